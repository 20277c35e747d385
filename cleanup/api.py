"""The Python API: ``run_policy`` (async) and ``run_policy_sync``, the same pipeline the
command line runs, returning a typed ``RunSummary``. The library never configures
logging and never prints."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .budget import RateBudget
from .credentials import Credentials
from .pipeline import Confirm, Run
from .policy import Policy
from .prepare import prepare
from .progress import ProgressReporter
from .settings import Settings
from .stopping import Stopping
from .summary import RunSummary


async def run_policy(
    policy: Policy | str | Path | Mapping[str, Any],
    *,
    apply: bool = False,
    ids: Iterable[str] = (),
    settings: Settings | None = None,
    credentials: Credentials | None = None,
    handle_signals: bool = False,
    progress: ProgressReporter | None = None,
    rng: random.Random | None = None,
    budget: RateBudget | None = None,
    confirm: Confirm | None = None,
    stopping: Stopping | None = None,
) -> RunSummary:
    """Run a policy end to end and return its summary (never raises for API trouble).

    ``policy`` is a ``Policy``, a path to a policy file, or a mapping in the policy
    file's format. ``ids`` adds explicit task IDs (like ``--ids-from``). Usage errors
    (bad policy, no credentials, a bad plan, an unwritable output) raise ``UsageError``
    before any request is sent. ``confirm`` is asked, with the number of tasks the
    plan acts on, before the first DELETE; a False answer deletes nothing (exit 1).
    ``stopping`` lets several runs in one process share one stop request (signals).
    """
    prepared = prepare(policy, apply=apply, ids=ids, settings=settings, credentials=credentials)
    run = Run(prepared, rng=rng, progress=progress, budget=budget, stopping=stopping)
    run.confirm = confirm
    return await run.execute(handle_signals)


def run_policy_sync(policy: Policy | str | Path | Mapping[str, Any], **kwargs: Any) -> RunSummary:
    """``run_policy`` for code that is not async (a notebook, an Airflow task).

    Inside a running event loop (Jupyter), the run gets its own loop in a thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_policy(policy, **kwargs))
    result: list[RunSummary] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(run_policy(policy, **kwargs)))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="nclue-cleanup-run")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
