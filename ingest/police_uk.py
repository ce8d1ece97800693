"""police.uk street-level crime CSVs, in the current format and the pre-2013 (2011) format.

Rules, applied in this order (a row is rejected for the first that fails):

* ``Month`` must be ``YYYY-MM`` between December 2010 (police.uk's first month) and the current month.
* ``Crime type`` must be a police.uk category (case and spacing are forgiven). The 2011 format's categories
  map to a current one only where the two mean the same thing (Anti-social behaviour, Burglary, Robbery,
  Vehicle crime); "Violent crime", "Other crime" (2011) and "Public disorder and weapons" have no
  one-to-one match and keep their original name, flagged by ``category_scheme``.
* Location: see ``ingest.locate``. With no coordinates, the record's own LSOA code places it, flagged.
* ``Crime ID``: a non-blank ID may be loaded once. A later row with the same ID, in this file or any
  other, is rejected as a duplicate naming where the first is. Anti-social behaviour rows have no ID and
  are never treated as duplicates of each other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text

from geo.levels import AreaLevel
from ingest.batch import LoadContext, Processed
from ingest.csvread import Block, CsvSchema
from ingest.fields import Rejects, blank, months, nullify_blank, quoted
from ingest.fields import text as trimmed
from ingest.locate import Coordinates, locate

CURRENT = CsvSchema(
    "police_uk",
    (
        "Crime ID",
        "Month",
        "Reported by",
        "Falls within",
        "Longitude",
        "Latitude",
        "Location",
        "LSOA code",
        "LSOA name",
        "Crime type",
        "Last outcome category",
        "Context",
    ),
)
LEGACY_2011 = CsvSchema(
    "police_uk_2011",
    ("Month", "Reported by", "Falls within", "Easting", "Northing", "Location", "Crime type", "Context"),
)

CATEGORIES = (
    "Anti-social behaviour",
    "Bicycle theft",
    "Burglary",
    "Criminal damage and arson",
    "Drugs",
    "Other crime",
    "Other theft",
    "Possession of weapons",
    "Public order",
    "Robbery",
    "Shoplifting",
    "Theft from the person",
    "Vehicle crime",
    "Violence and sexual offences",
)
# Categories police.uk used before May 2013 that have no one-to-one current category.
RETIRED_CATEGORIES = ("Violent crime", "Public disorder and weapons")
# The 2011 format's categories that mean the same as a current one.
LEGACY_ONE_TO_ONE = {
    "Anti-social behaviour": "Anti-social behaviour",
    "Burglary": "Burglary",
    "Robbery": "Robbery",
    "Vehicle crime": "Vehicle crime",
}
LEGACY_UNMAPPED = ("Violent crime", "Other crime")

_CANONICAL = {name.lower(): name for name in (*CATEGORIES, *RETIRED_CATEGORIES)}


@dataclass(frozen=True)
class PoliceUkStreet:
    """police.uk street-level crime; both file formats."""

    name: str = "police_uk_street"
    table: str = "crimes"
    schemas: tuple[CsvSchema, ...] = (CURRENT, LEGACY_2011)

    def process(self, block: Block, ctx: LoadContext) -> Processed:
        """Check, classify, locate and de-duplicate one block."""
        legacy = ctx.schema is LEGACY_2011
        col = {name: trimmed(values) for name, values in block.columns.items()}
        rejects = Rejects(block.rows)
        notes: Counter[str] = Counter()

        month, malformed, out_of_range = months(col["Month"], ctx.latest_month)
        rejects.add(malformed, "Month", "bad_month", _quote("is not YYYY-MM: ", col["Month"], malformed))
        rejects.add(
            out_of_range,
            "Month",
            "bad_month",
            _quote(f"is outside Dec 2010 to {ctx.latest_month:%b %Y}: ", col["Month"], out_of_range),
        )

        original = col["Crime type"].to_numpy(zero_copy_only=False)
        canonical = np.array([_CANONICAL.get(" ".join(v.lower().split())) for v in original], dtype=object)
        unknown = np.array([c is None for c in canonical], dtype=bool)
        rejects.add(
            unknown,
            "Crime type",
            "unknown_category",
            _quote("is not a police.uk category: ", col["Crime type"], unknown),
        )
        crime_type, scheme = _classify(canonical, legacy)
        notes["unmapped_category"] += int(np.count_nonzero((scheme == "police_uk_2011_unmapped") & ~unknown))

        if legacy:
            reported = None
            located = locate(
                ctx, rejects, col["Easting"], col["Northing"], Coordinates("Easting", "Northing", 27700)
            )
        else:
            reported = col["LSOA code"].to_numpy(zero_copy_only=False).astype(object)
            no_code = blank(col["LSOA code"])
            bad_code = ~no_code & ~np.array(
                [bool(AreaLevel.LSOA11.code_pattern.match(c)) for c in reported], dtype=bool
            )
            rejects.add(
                bad_code, "LSOA code", "bad_code", _quote("is not an LSOA code: ", col["LSOA code"], bad_code)
            )
            located = locate(
                ctx,
                rejects,
                col["Longitude"],
                col["Latitude"],
                Coordinates("Longitude", "Latitude", 4326),
                lsoa11_codes=reported,
            )
            reported[no_code] = None

        crime_id = None
        if not legacy:
            crime_id = nullify_blank(col["Crime ID"])
            _reject_duplicates(ctx, block, crime_id, rejects)

        assigned = np.asarray(located["lsoa11_code"].to_numpy(zero_copy_only=False), dtype=object)
        by_point = np.asarray(pc.equal(located["location_source"], "point").to_numpy(zero_copy_only=False))
        if reported is not None:
            compared = by_point & ~no_code & rejects.kept
            disagrees = np.where(compared, reported != assigned, False)
            notes["lsoa_compared"] += int(compared.sum())
            notes["lsoa_disagreements"] += int(disagrees[compared].sum())
            lsoa_disagrees = pa.array(disagrees, pa.bool_(), mask=~compared)
        else:
            lsoa_disagrees = pa.nulls(block.rows, pa.bool_())
        notes["located_by_lsoa_code"] += int(np.count_nonzero(~by_point & rejects.kept))

        n = block.rows
        table = pa.table(
            {
                "crime_id": crime_id if crime_id is not None else pa.nulls(n, pa.string()),
                "month": month,
                "reported_by": col["Reported by"],
                "falls_within": col["Falls within"],
                "location_text": col["Location"],
                "lsoa11_reported": pa.array(reported, pa.string())
                if reported is not None
                else pa.nulls(n, pa.string()),
                "lsoa_disagrees": lsoa_disagrees,
                "crime_type": pa.array(crime_type, pa.string()),
                "crime_type_original": col["Crime type"],
                "category_scheme": pa.array(scheme, pa.string()),
                "outcome": nullify_blank(col["Last outcome category"])
                if not legacy
                else pa.nulls(n, pa.string()),
                "context": nullify_blank(col["Context"]),
                **located,
            }
        )
        return Processed(table=table, rejects=rejects, notes=notes)


def _classify(canonical: np.ndarray, legacy: bool) -> tuple[np.ndarray, np.ndarray]:
    crime_type = canonical.copy()
    scheme = np.full(len(canonical), "police_uk", dtype=object)
    if legacy:
        mapped = np.array([c in LEGACY_ONE_TO_ONE for c in canonical], dtype=bool)
        scheme[:] = "police_uk_2011_unmapped"
        scheme[mapped] = "police_uk_2011_mapped"
        crime_type[mapped] = [LEGACY_ONE_TO_ONE[c] for c in canonical[mapped]]
    else:
        retired = np.array([c in RETIRED_CATEGORIES for c in canonical], dtype=bool)
        scheme[retired] = "police_uk_2011_unmapped"
    crime_type[np.array([c is None for c in crime_type], dtype=bool)] = ""  # rejected rows; never stored
    return crime_type, scheme


def _reject_duplicates(ctx: LoadContext, block: Block, crime_id: pa.Array, rejects: Rejects) -> None:
    ids = crime_id.to_numpy(zero_copy_only=False)
    present = np.array([v is not None for v in ids], dtype=bool) & rejects.kept
    if not present.any():
        return
    frame = pd.DataFrame({"id": ids[present], "line": block.lines[present]})
    first = frame.groupby("id")["line"].transform("min").to_numpy()
    repeat = np.zeros(len(ids), dtype=bool)
    repeat[present] = first != frame["line"].to_numpy()
    reason = np.full(len(ids), None, dtype=object)
    reason[present] = [f"Crime ID repeats line {f} of this file" for f in first]
    rejects.add(repeat, "Crime ID", "duplicate_id", reason)

    candidates = sorted(set(ids[present & ~repeat]))
    earlier = ctx.conn.execute(
        text("SELECT crime_id, batch_id, line FROM crimes WHERE crime_id = ANY(:ids)"), {"ids": candidates}
    ).all()
    if earlier:
        where = {r.crime_id: (r.batch_id, r.line) for r in earlier}
        seen = np.array([v in where for v in ids], dtype=bool) & present
        reason = np.full(len(ids), None, dtype=object)
        reason[seen] = [
            "Crime ID already loaded: "
            + (
                f"line {where[v][1]} of this file"
                if where[v][0] == ctx.batch_id
                else f"batch {where[v][0]}, line {where[v][1]}"
            )
            for v in ids[seen]
        ]
        rejects.add(seen, "Crime ID", "duplicate_id", reason)


def _quote(prefix: str, values: pa.Array, mask: np.ndarray) -> np.ndarray:
    out = quoted(values, mask)
    out[mask] = [prefix + v for v in out[mask]]
    return out
