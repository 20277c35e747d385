"""Every error nclue-cleanup raises on purpose, and the exit code it maps to.

    CleanupError .................. exit 1 unless a subclass says otherwise
    ├── UsageError ................ exit 2: found before any delete
    │   ├── PolicyError ........... the policy file (names file, key path, expectation)
    │   ├── CredentialsError ...... missing, unreadable or unlisted credentials
    │   ├── PlanError ............. a --plan file that is unreadable, edited or not ours
    │   └── EndpointError ......... the endpoint or route answers like no NCLUE API
    ├── SafetyGuardError .......... exit 5: the plan or the failures pass a safety guard
    ├── ListingIncompleteError .... exit 1: fail closed, nothing is deleted
    ├── AuditWriteError ........... exit 1: an audit line could not be written whole
    └── ApiError .................. one HTTP exchange with the NCLUE API went wrong
        ├── TransientApiError ..... 5xx, timeouts, dropped connections: retried
        │   └── ThrottledError .... 429 (410 / 420): everyone slows down, retried
        ├── QuotaExceededError .... 429 (400): stop the run cleanly, exit 1
        │   └── ThrottleStormError  429 after 429 with no success: stop the same way
        ├── AuthError ............. the gateway's 401 / 403: stop the run at once, exit 3
        ├── NotFoundError ......... 404 with the API's JSON error body
        ├── RefusedError .......... any other 4xx (for DELETE: judged from evidence)
        └── BadResponseError ...... a 2xx or 3xx that cannot be trusted: failed, not retried

Messages never contain credentials: the client builds them from the status, the
gateway's error code and message, and the request's method and path only.
"""

from __future__ import annotations


class CleanupError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class UsageError(CleanupError):
    """Bad input found before any request: usage, policy, credentials or plan."""

    exit_code = 2


class PolicyError(UsageError):
    """The policy file is missing, malformed or has an invalid key."""


class CredentialsError(UsageError):
    """No usable access key / secret key, or one the policy does not allow."""


class PlanError(UsageError):
    """A plan file is unreadable, was edited, or was made for another policy or account."""


class EndpointError(UsageError):
    """The endpoint does not answer like the NCLUE API (wrong base path, proxy page)."""


class SafetyGuardError(CleanupError):
    """The plan exceeds a cap, or deletes failed past ``max_failure_percent``."""

    exit_code = 5


class ListingIncompleteError(CleanupError):
    """A listing could not be completed; nothing may be deleted."""


class AuditWriteError(CleanupError):
    """An audit line could not be written whole: no further DELETE may be sent."""


class ApiError(CleanupError):
    """An HTTP exchange with the API failed.

    ``status`` is the HTTP status (0 when no response arrived), ``code`` the
    gateway's or NCLUE's ``errorCode`` as a string, ``detail`` the server's message.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class TransientApiError(ApiError):
    """Worth retrying: 5xx, timeouts, resets. A DELETE may or may not have happened."""


class ThrottledError(TransientApiError):
    """429 Throttle / Rate Limited; ``retry_after`` in seconds when the server said."""


class QuotaExceededError(ApiError):
    """429 Quota Exceeded: retrying cannot help."""


class ThrottleStormError(QuotaExceededError):
    """Many 429s in a row and no success between them: stop like a spent quota."""


class AuthError(ApiError):
    """The gateway's authentication or permission error: stop the run at once."""

    exit_code = 3


class NotFoundError(ApiError):
    """404 with the API's JSON error body (for DELETE on a proven endpoint: absent)."""


class RefusedError(ApiError):
    """Another 4xx: the server refused this request (for DELETE, maybe because busy)."""


class BadResponseError(ApiError):
    """A response that cannot be trusted: a redirect, a 2xx naming another task, an
    HTML page or an error object in a 2xx, a body over the size cap."""
