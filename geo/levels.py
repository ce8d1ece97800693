"""Area levels and the GSS code patterns that identify them."""

from __future__ import annotations

import re
from enum import StrEnum


class AreaLevel(StrEnum):
    """The geographies harmmap stores, coarsest first."""

    FORCE = "force"
    LOCAL_AUTHORITY = "local_authority"
    WARD = "ward"
    LSOA11 = "lsoa11"
    LSOA21 = "lsoa21"

    @property
    def code_pattern(self) -> re.Pattern[str]:
        """The GSS code pattern for this level (England and Wales)."""
        return _CODE_PATTERNS[self]

    @property
    def rank(self) -> int:
        """Position in the hierarchy; parents load before children."""
        return list(AreaLevel).index(self)


_CODE_PATTERNS: dict[AreaLevel, re.Pattern[str]] = {
    # E23 English police force areas, W15 Welsh ones.
    AreaLevel.FORCE: re.compile(r"^(E23|W15)\d{6}$"),
    # E06 unitary, E07 non-metropolitan district, E08 metropolitan district, E09 London borough, W06 Wales.
    AreaLevel.LOCAL_AUTHORITY: re.compile(r"^(E06|E07|E08|E09|W06)\d{6}$"),
    AreaLevel.WARD: re.compile(r"^(E05|W05)\d{6}$"),
    AreaLevel.LSOA11: re.compile(r"^(E01|W01)\d{6}$"),
    AreaLevel.LSOA21: re.compile(r"^(E01|W01)\d{6}$"),
}

ANY_GSS = re.compile(r"^[EWSNK]\d{8}$")
FORCE_CODE = _CODE_PATTERNS[AreaLevel.FORCE]
