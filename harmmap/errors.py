"""The one error hierarchy for harmmap's domain code.

Domain and geo code raise these; ``app/errors.py`` maps each class to an HTTP status in one table and the
CLI prints them. Each error names what was wrong and where, so a user can fix it without reading code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class HarmmapError(Exception):
    """Base class of every error harmmap raises on purpose."""

    title = "harmmap error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(HarmmapError, LookupError):
    """A code or resource that does not exist in the store."""

    title = "Not found"

    def __init__(self, detail: str, *, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.parameter = parameter


class ForbiddenError(HarmmapError, PermissionError):
    """The caller may not see this: restricted records outside their role or force."""

    title = "Forbidden"

    def __init__(self, detail: str, *, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.parameter = parameter


class InvalidParameterError(HarmmapError, ValueError):
    """A request or command parameter that is malformed or outside its allowed values."""

    title = "Invalid parameter"

    def __init__(self, parameter: str, detail: str, *, allowed: Sequence[str] | None = None) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.allowed = list(allowed) if allowed is not None else None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: the file, where in it, which field, and why."""

    file: str
    where: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: field {self.field!r}: {self.reason}"


class DataFileError(HarmmapError, ValueError):
    """An input file that cannot be loaded; nothing from it has been written."""

    title = "Bad input file"

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("DataFileError needs at least one problem")
        self.problems = list(problems)
        shown = "\n  ".join(str(p) for p in self.problems[:20])
        more = len(self.problems) - 20
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.problems)} problem(s), nothing loaded:\n  {shown}{tail}")


class DatabaseUnavailableError(HarmmapError):
    """The PostGIS store cannot be reached, or is not ready (e.g. migrations not run)."""

    title = "Database unavailable"


class ServiceUnavailableError(HarmmapError):
    """A part the service needs is missing (e.g. the web map's library was not installed)."""

    title = "Service unavailable"


class UnauthenticatedError(HarmmapError):
    """Credentials were presented and are not valid (malformed, unknown, revoked or expired)."""

    title = "Unauthenticated"


class RateLimitedError(HarmmapError):
    """The caller has made more requests than its allowance; ``retry_after`` seconds until the next."""

    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class PayloadTooLargeError(HarmmapError):
    """A request body over the configured cap; nothing from it has been kept."""

    title = "Payload too large"

    def __init__(self, detail: str, *, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.parameter = parameter
