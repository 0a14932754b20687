"""The exception tree. Each class carries the process exit code and whether a retry can help.

    SyncError                      exit 1   something failed after work began
    ├── OutputError                exit 1   a report or plan file could not be written
    ├── InputError                 exit 2   usage, configuration or input error; nothing was sent
    │   └── ConfigError            exit 2   a bad option, mapping file or environment variable
    ├── SafetyError                exit 3   a guard refused the run; nothing was sent
    │   ├── StalePlanError         exit 3   the remote changed since the saved plan was made
    │   └── LockedError            exit 3   another run holds the account's lock
    └── RemoteError                exit 4   the remote refused or could not be reached
        ├── AuthError                       401: unknown API secret
        ├── PermissionDenied                403: the key lacks an endpoint's permission
        ├── InvalidRequest                  400: the server refused the parameters
        │   ├── QuotaReached                     the plan's contact quota is full
        │   └── PhoneExists                      the phone is already in the contact book
        ├── ServerError                     500 in the envelope: "Something went wrong!"
        └── TransientError     retryable   HTTP 429/5xx from a proxy, non-JSON body, timeout,
                                            dropped connection
A bad *row* is never an exception: it is a RowIssue in the ingest result.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_SAFETY = 3
EXIT_REMOTE = 4


class SyncError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code: ClassVar[int] = EXIT_FAILED
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.report_dir: str | None = None  # set when a report was written before raising

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class OutputError(SyncError):
    """A report or plan file could not be written (disk full, a directory gone read-only)."""


class InputError(SyncError):
    """A source file cannot be used as a whole (missing, unreadable, no phone column...)."""

    exit_code = EXIT_INPUT


class ConfigError(InputError):
    """A bad option, mapping file or environment variable."""


class SafetyError(SyncError):
    """A guard refused the whole run before the first write."""

    exit_code = EXIT_SAFETY


class StalePlanError(SafetyError):
    """The remote is no longer what the saved plan was made against."""


class LockedError(SafetyError):
    """Another run holds the lock for this account."""


class RemoteError(SyncError):
    """The remote answered with an error, or could not be reached."""

    exit_code = EXIT_REMOTE

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.endpoint = endpoint
        self.status = status
        self.attempts: int | None = None  # requests the operation sent before giving up


class AuthError(RemoteError):
    """401: the API secret is unknown to the server."""


class PermissionDenied(RemoteError):
    """403: the key lacks the permission named after the endpoint (e.g. `create_contact`)."""

    def __init__(self, message: str, *, permission: str, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.permission = permission


class InvalidRequest(RemoteError):
    """400: the server refused the request; `message` is the server's own words."""


class QuotaReached(InvalidRequest):
    """400 `You have reached the maximum allowed contacts!`: retrying cannot help."""


class PhoneExists(InvalidRequest):
    """400 `Phone number already exist in your contact book!`."""


class ServerError(RemoteError):
    """500 inside a 200 envelope (`Something went wrong!`): the application failed."""


class TransientError(RemoteError):
    """Something in front of the application failed: a retry may help."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
