"""nclue-cleanup: bulk, rate-limited, audited cleanup of NCLUE task models.

The Python API is the pipeline the command line runs::

    summary = await cleanup.run_policy("policy.yaml", apply=True, ids=superseded)
    summary = cleanup.run_policy_sync({"version": 1, "select": {"ids": ids}}, apply=True)
"""

__version__ = "0.1.0"

from .api import run_policy, run_policy_sync
from .credentials import Credentials
from .policy import Policy, load_policy
from .settings import Settings
from .summary import RunSummary

__all__ = [
    "Credentials",
    "Policy",
    "RunSummary",
    "Settings",
    "__version__",
    "load_policy",
    "run_policy",
    "run_policy_sync",
]
