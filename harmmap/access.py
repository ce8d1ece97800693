"""Who may see what: the one access policy, free of HTTP.

Force records are OFFICIAL-SENSITIVE. The policy has four kinds of resource and four roles:

==================  ========  ==================  ===================  =====
resource            public    analyst (force F)   lead                 admin
==================  ========  ==================  ===================  =====
open                yes       yes                 yes                  yes
aggregate           withheld  F unsuppressed,     withheld             withheld
                    small n   others withheld
force aggregate     no        F only, unsupp.     pilot forces,        no
                                                  withheld
records             no        F only              no                   no
admin               no        no                  no                   yes
==================  ========  ==================  ===================  =====

*aggregate* is built from public data (police.uk, Census, IMD); *force aggregate* draws on force-held
data (calls for service, force offence records), so only the force itself and the pilot leads see it.
"withheld" means counts from 1 to the disclosure threshold are withheld (``Disclosure``). An admin key
is for operations (ingest, keys, audit), not for reading force data: least privilege.

``authorize`` is the single decision; the web layer calls it once per request, for every route.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum

from geo.levels import FORCE_CODE
from harm_index.disclosure import Disclosure
from harmmap.errors import ForbiddenError, InvalidParameterError


class Role(StrEnum):
    """What a caller may see: public aggregates, own-force records, all pilot aggregates, admin."""

    PUBLIC = "public"
    ANALYST = "analyst"
    LEAD = "lead"
    ADMIN = "admin"


class Resource(StrEnum):
    """The kinds of thing a request can read or do, from least to most sensitive."""

    OPEN = "open"
    AGGREGATE = "aggregate"
    FORCE_AGGREGATE = "force_aggregate"
    RECORDS = "records"
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

    def __post_init__(self) -> None:
        if self.role == Role.ANALYST and self.force_code is None:
            raise ValueError("an analyst principal must belong to a force")


@dataclass
class Grant:
    """What ``authorize`` allowed: the principal, the resource, the force it concerns, and how.

    ``rows`` is filled in by the code that serves the data, for the audit log.
    """

    principal: Principal
    resource: Resource
    force_code: str | None
    unsuppressed: bool
    audited: bool
    action: str = "read"
    rows: int | None = field(default=None)

    def disclosure(self, threshold: int) -> Disclosure:
        """The disclosure rule for this grant's figures."""
        return Disclosure(threshold, active=not self.unsuppressed)

    def returned(self, rows: int) -> None:
        """Record how many rows (features, areas, records) the response holds."""
        self.rows = rows


def check_force_code(value: str | None, parameter: str = "force") -> str | None:
    """A force GSS code as given, or InvalidParameterError naming ``parameter``."""
    if value is None:
        return None
    code = value.strip().upper()
    if not FORCE_CODE.match(code):
        raise InvalidParameterError(
            parameter, "must be a police force area GSS code: E23 or W15 and six digits, e.g. E23000030"
        )
    return code


def authorize(
    principal: Principal,
    resource: Resource,
    force_code: str | None,
    *,
    pilot_forces: Collection[str],
    export: bool = False,
) -> Grant:
    """Decide whether ``principal`` may have ``resource`` of ``force_code`` (None: every force).

    Raises ForbiddenError naming the reason, InvalidParameterError when force-held data is asked for
    without naming a force. Returns the grant: whether figures are unsuppressed, and whether the
    request must be audited (every restricted read, every export, every admin action).
    """
    force_code = check_force_code(force_code)
    role = principal.role
    own = role == Role.ANALYST and force_code is not None and force_code == principal.force_code
    action = "export" if export else "read"
    if resource == Resource.OPEN:
        return Grant(principal, resource, force_code, unsuppressed=False, audited=export, action=action)
    if resource == Resource.AGGREGATE:
        return Grant(principal, resource, force_code, unsuppressed=own, audited=own or export, action=action)
    if resource == Resource.FORCE_AGGREGATE:
        if force_code is None:
            raise InvalidParameterError(
                "force", "force-held data (calls, force records) is served one force at a time: name it"
            )
        if own:
            return Grant(principal, resource, force_code, unsuppressed=True, audited=True, action=action)
        if role == Role.LEAD and force_code in pilot_forces:
            return Grant(principal, resource, force_code, unsuppressed=False, audited=True, action=action)
        raise ForbiddenError(_force_held_refusal(principal, force_code), parameter="force")
    if resource == Resource.RECORDS:
        if role != Role.ANALYST:
            raise ForbiddenError(
                "record-level data is OFFICIAL-SENSITIVE: only an analyst of the force may see it",
                parameter="collectionId",
            )
        target = force_code or principal.force_code
        if target != principal.force_code:
            raise ForbiddenError(
                f"an analyst of {principal.force_code} may not see {target}'s records", parameter="force"
            )
        return Grant(principal, resource, target, unsuppressed=True, audited=True, action=action)
    if role != Role.ADMIN:
        raise ForbiddenError("this needs an admin key", parameter="X-API-Key")
    return Grant(principal, resource, force_code, unsuppressed=False, audited=True, action="ingest")


def _force_held_refusal(principal: Principal, force_code: str) -> str:
    if principal.role == Role.ANALYST:
        return f"an analyst of {principal.force_code} may not see {force_code}'s force-held data"
    if principal.role == Role.LEAD:
        return f"{force_code} is not a pilot force"
    return (
        "this layer draws on force-held data (calls for service, force records), which is "
        "OFFICIAL-SENSITIVE: it needs an analyst key of the force or a lead key"
    )


def force_held_forces(principal: Principal, pilot_forces: Collection[str]) -> list[str]:
    """The forces whose force-held aggregates ``principal`` may see (what ``authorize`` would allow)."""
    if principal.role == Role.ANALYST and principal.force_code is not None:
        return [principal.force_code]
    if principal.role == Role.LEAD:
        return sorted(pilot_forces)
    return []
