"""Every error nclue-cleanup raises on purpose, and the exit code it maps to.

    CleanupError
    ├── UsageError ................ exit 2: found before any delete
    │   ├── PolicyError ........... the policy file (names file, key path, expectation)
    │   ├── CredentialsError ...... missing or unreadable credentials
    │   └── PlanError ............. a --plan file that is unreadable or from another policy
    ├── SafetyGuardError .......... exit 5: the plan exceeds limits.max_deletions
    ├── ListingIncompleteError .... exit 1: fail closed, nothing is deleted
    └── ApiError .................. one HTTP exchange with the NCLUE API went wrong
        ├── TransientApiError ..... 5xx, timeouts, dropped connections: retried
        │   └── ThrottledError .... 429 (410 / 420): everyone slows down, retried
        ├── QuotaExceededError .... 429 (400): stop the run cleanly, exit 1
        │   └── ThrottleStormError  429 after 429 with no success: stop the same way
        ├── AuthError ............. 401 / 403: stop the run at once, exit 3
        ├── NotFoundError ......... 404: for DELETE, the task is already gone
        └── RefusedError .......... any other 4xx: permanent for that request

Messages never contain credentials: the client builds them from the status,
the gateway's error code and message, and the request's method and path only.
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
    """No usable access key / secret key."""


class PlanError(UsageError):
    """A plan file is unreadable or was made from a different policy."""


class SafetyGuardError(CleanupError):
    """The plan would delete more tasks than limits.max_deletions allows."""

    exit_code = 5


class ListingIncompleteError(CleanupError):
    """The task listing could not be completed; nothing may be deleted."""

    exit_code = 1


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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail


class TransientApiError(ApiError):
    """Worth retrying: 5xx, timeouts, resets. A DELETE may or may not have happened."""


class ThrottledError(TransientApiError):
    """429 Throttle / Rate Limited; ``retry_after`` in seconds when the server said."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 429,
        code: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, detail=detail)
        self.retry_after = retry_after


class QuotaExceededError(ApiError):
    """429 Quota Exceeded: retrying cannot help."""


class ThrottleStormError(QuotaExceededError):
    """Many 429s in a row and no success between them: stop like a spent quota.

    At 1 request/s, retrying every task through a long storm would take hours while
    telling nobody; stopping says so at once, and the next run picks up the work.
    """


class AuthError(ApiError):
    """401 / 403: bad key, bad signature, clock skew or missing permission.

    ``skew_s`` is the server's clock minus ours (from its ``Date`` header) and
    ``offset_ms_used`` the timestamp correction the request was signed with.
    """

    exit_code = 3
    skew_s: float | None = None
    offset_ms_used: int = 0


class NotFoundError(ApiError):
    """404: the resource does not exist (for DELETE: already absent)."""


class RefusedError(ApiError):
    """Another 4xx: the server refused this request (for DELETE, maybe because busy)."""
