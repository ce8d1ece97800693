"""The loadable sources by the name the CLI and the upload endpoint use for them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harmmap.errors import InvalidParameterError
from ingest.batch import Source
from ingest.calls import CallsForService
from ingest.offences import ForceOffences
from ingest.police_uk import PoliceUkStreet
from ingest.reference import CensusEthnicityLad, CensusEthnicityLsoa, ImdRanks, ImdSubdomains
from ingest.stop_search import PoliceUkStopSearch


@dataclass(frozen=True)
class SourceKind:
    """A source's loader, and what a load of it needs to be told."""

    name: str
    make: Callable[[], Source]
    description: str
    needs_force: bool = False
    takes_force: bool = False
    may_be_synthetic: bool = False


SOURCES: dict[str, SourceKind] = {
    kind.name: kind
    for kind in (
        SourceKind("police-uk", PoliceUkStreet, "police.uk street-level crime (current or 2011 format)"),
        SourceKind("stop-search", PoliceUkStopSearch, "police.uk stop and search"),
        SourceKind(
            "offences",
            ForceOffences,
            "force recorded crime with Home Office offence codes",
            needs_force=True,
            takes_force=True,
        ),
        SourceKind(
            "calls",
            CallsForService,
            "calls for service (harmmap schema)",
            takes_force=True,
            may_be_synthetic=True,
        ),
        SourceKind("imd-ranks", ImdRanks, "IoD 2019 ranks and deciles by LSOA 2011"),
        SourceKind("imd-subdomains", ImdSubdomains, "IoD 2019 sub-domain ranks by LSOA 2011"),
        SourceKind("census-lsoa", CensusEthnicityLsoa, "Census 2021 TS021 broad ethnic group by LSOA 2021"),
        SourceKind("census-lad", CensusEthnicityLad, "Census 2021 detailed ethnic group by local authority"),
    )
}


def source_kind(name: str) -> SourceKind:
    """The source called ``name``; InvalidParameterError listing the names otherwise."""
    kind = SOURCES.get(name)
    if kind is None:
        raise InvalidParameterError("source", f"{name[:40]!r} is not a source", allowed=list(SOURCES))
    return kind
