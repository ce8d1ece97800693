"""Who is calling. Every route takes a principal; issue [7/7] turns this into real authentication."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from harm_index.disclosure import Disclosure


class Role(StrEnum):
    """What a caller may see: public aggregates, own-force records, all pilot aggregates, admin."""

    PUBLIC = "public"
    ANALYST = "analyst"
    LEAD = "lead"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The caller a request acts for."""

    subject: str
    role: Role
    force_code: str | None = None

    @classmethod
    def anonymous(cls) -> Principal:
        """A caller with no credentials: public, disclosure-controlled aggregates only."""
        return cls(subject="anonymous", role=Role.PUBLIC)


def get_principal() -> Principal:
    """Resolve the request's principal. Without credentials support yet, everyone is anonymous."""
    return Principal.anonymous()


def disclosure_for(threshold: int, principal: Principal, force_code: str | None) -> Disclosure:
    """The disclosure rule for what ``principal`` sees of ``force_code``'s figures.

    Only an analyst looking at their own force sees unsuppressed counts.
    """
    own = principal.role == Role.ANALYST and force_code is not None and principal.force_code == force_code
    return Disclosure(threshold, active=not own)
