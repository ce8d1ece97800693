"""Calls for service, in harmmap's documented schema (docs/input-schemas.md).

No public data exists; harmmap's generator makes synthetic files in this schema, marked ``synthetic=true``
on every row.

Columns: ``call_id``, ``received_at`` (ISO 8601; without an offset it is UK local time), ``channel``
(999, 101, online), ``opening_code`` and ``closing_code`` (the codes below), ``caller_ref`` (a SHA-256
hex digest of the caller's number, never the number itself; blank when withheld), a location as
``latitude``/``longitude``, ``easting``/``northing`` or ``lsoa_code`` (2011 or 2021), and optionally
``caller_ethnicity`` (Census 2021 categories) and ``synthetic`` (true/false).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingest.batch import LoadContext, Processed
from ingest.csvread import Block, CsvSchema
from ingest.ethnicity import NOT_STATED, census_group
from ingest.fields import Rejects, blank, described, nullify_blank, one_of
from ingest.fields import text as trimmed
from ingest.identity import reject_repeated_ids
from ingest.locate import Coordinates, locate

SCHEMA = CsvSchema(
    "calls_for_service",
    ("call_id", "received_at", "channel", "opening_code", "closing_code", "caller_ref"),
    ("latitude", "longitude", "easting", "northing", "lsoa_code", "caller_ethnicity", "synthetic"),
    one_of=(("latitude", "longitude"), ("easting", "northing"), ("lsoa_code",)),
)
CHANNELS = ("999", "101", "online")

# Closing codes and the demand group each belongs to (used for demand per 1,000 by group).
CLOSING_CODE_GROUPS: dict[str, str] = {
    "CRIME_VIOLENCE": "crime",
    "CRIME_DOMESTIC": "crime",
    "CRIME_BURGLARY": "crime",
    "CRIME_THEFT": "crime",
    "CRIME_CRIMINAL_DAMAGE": "crime",
    "CRIME_DRUGS": "crime",
    "CRIME_OTHER": "crime",
    "ASB_PERSONAL": "anti_social_behaviour",
    "ASB_NUISANCE": "anti_social_behaviour",
    "ASB_ENVIRONMENTAL": "anti_social_behaviour",
    "CONCERN_FOR_SAFETY": "public_safety_welfare",
    "MENTAL_HEALTH": "public_safety_welfare",
    "MISSING_PERSON": "public_safety_welfare",
    "SUSPICIOUS_CIRCUMSTANCES": "public_safety_welfare",
    "ROAD_TRAFFIC_COLLISION": "transport",
    "ROAD_RELATED_OFFENCE": "transport",
    "ADMIN_ENQUIRY": "administrative",
    "HOAX_OR_NUISANCE_CALL": "administrative",
    "NO_POLICE_ACTION_REQUIRED": "administrative",
    "DUPLICATE_CALL": "administrative",
}
# Opening codes are what the call handler first records; each closing code is also valid as one.
OPENING_CODES = (*CLOSING_CODE_GROUPS, "ABANDONED_999", "UNKNOWN")
SHA256_HEX = r"^[0-9a-f]{64}$"
BOOLEANS = {"": False, "true": True, "false": False}


@dataclass(frozen=True)
class CallsForService:
    """Calls for service in harmmap's documented schema."""

    name: str = "calls_for_service"
    table: str = "calls"
    schemas: tuple[CsvSchema, ...] = (SCHEMA,)

    def process(self, block: Block, ctx: LoadContext) -> Processed:
        """Check, locate and de-duplicate one block; flag synthetic rows."""
        col = {name: trimmed(values) for name, values in block.columns.items()}
        rejects = Rejects(block.rows)
        notes: Counter[str] = Counter()

        rejects.add(blank(col["call_id"]), "call_id", "missing_value", "is blank")
        raw = pd.Series(col["received_at"].to_numpy(zero_copy_only=False))
        received = _as_utc(raw)
        bad_time = received.isna().to_numpy()
        rejects.add(
            bad_time,
            "received_at",
            "bad_date",
            described("is not an ISO 8601 date-time: ", col["received_at"], bad_time),
        )
        local = received.dt.tz_convert("Europe/London")
        month_index = (local.dt.year.fillna(1970) - 1970) * 12 + local.dt.month.fillna(1) - 1
        month = month_index.to_numpy(dtype=np.int64).astype("datetime64[M]").astype("datetime64[D]")
        out_of_range = ~bad_time & (
            (month < np.datetime64("2010-01-01")) | (month > np.datetime64(ctx.latest_month))
        )
        rejects.add(
            out_of_range,
            "received_at",
            "bad_month",
            described(f"is outside 2010 to {ctx.latest_month:%b %Y}: ", col["received_at"], out_of_range),
        )
        for field, allowed in (
            ("channel", CHANNELS),
            ("opening_code", OPENING_CODES),
            ("closing_code", tuple(CLOSING_CODE_GROUPS)),
        ):
            bad = ~one_of(col[field], allowed)
            rejects.add(bad, field, "unknown_category", described(f"is not a {field}: ", col[field], bad))
        caller = pc.utf8_lower(col["caller_ref"])
        not_hash = ~blank(caller) & ~np.asarray(
            pc.match_substring_regex(caller, SHA256_HEX).to_numpy(zero_copy_only=False), dtype=bool
        )
        rejects.add(
            not_hash,
            "caller_ref",
            "not_pseudonymised",
            "is not a SHA-256 hex digest; caller references must be hashed before loading",
        )

        ethnicity = col.get("caller_ethnicity")
        groups = np.full(block.rows, NOT_STATED, dtype=object)
        if ethnicity is not None:
            groups = np.array(
                [census_group(v) for v in ethnicity.to_numpy(zero_copy_only=False)], dtype=object
            )
            unknown = np.array([g is None for g in groups], dtype=bool)
            rejects.add(
                unknown,
                "caller_ethnicity",
                "unknown_category",
                described("is not a Census 2021 ethnic group: ", ethnicity, unknown),
            )
        synthetic = np.zeros(block.rows, dtype=bool)
        if "synthetic" in col:
            flags = [BOOLEANS.get(v.lower()) for v in col["synthetic"].to_numpy(zero_copy_only=False)]
            bad = np.array([f is None for f in flags], dtype=bool)
            rejects.add(
                bad, "synthetic", "bad_value", described("is not true or false: ", col["synthetic"], bad)
            )
            synthetic = np.array([bool(f) for f in flags], dtype=bool)

        codes = col.get("lsoa_code")
        if "latitude" in col and "longitude" in col:
            coords: tuple[str, str, int] | None = ("longitude", "latitude", 4326)
        elif "easting" in col and "northing" in col:
            coords = ("easting", "northing", 27700)
        else:
            coords = None
        located = locate(
            ctx,
            rejects,
            col[coords[0]] if coords else None,
            col[coords[1]] if coords else None,
            Coordinates(*coords) if coords else None,
            lsoa11_codes=codes,
            lsoa_field="lsoa_code",
            any_lsoa_edition=True,
        )
        reject_repeated_ids(ctx, block, "calls", col["call_id"], located["force_code"], "call_id", rejects)
        notes["synthetic_rows"] += int(np.count_nonzero(rejects.kept & synthetic))
        notes["caller_ethnicity_not_stated"] += int(np.count_nonzero(rejects.kept & (groups == NOT_STATED)))

        return Processed(
            table=pa.table(
                {
                    "call_id": col["call_id"],
                    "received_at": pa.array(
                        received.dt.tz_localize(None).to_numpy(), pa.timestamp("us", tz="UTC")
                    ),
                    "month": pa.array(month, pa.date32()),
                    "channel": col["channel"],
                    "opening_code": col["opening_code"],
                    "closing_code": col["closing_code"],
                    "caller_ref": nullify_blank(caller),
                    "caller_ethnicity": nullify_blank(ethnicity)
                    if ethnicity is not None
                    else pa.nulls(block.rows, pa.string()),
                    "caller_group": pa.array(np.where(groups == None, "", groups), pa.string()),  # noqa: E711
                    **located,
                    "synthetic": pa.array(synthetic, pa.bool_()),
                }
            ),
            rejects=rejects,
            notes=notes,
        )


def _as_utc(raw: pd.Series) -> pd.Series:
    """Times with an offset are converted to UTC; times without one are taken as UK local time."""
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
    has_offset = raw.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True, na=False).to_numpy()
    if has_offset.any():
        out[has_offset] = pd.to_datetime(raw[has_offset], format="ISO8601", errors="coerce", utc=True)
    naive = ~has_offset
    if naive.any():
        local = pd.to_datetime(raw[naive], format="ISO8601", errors="coerce")
        out[naive] = local.dt.tz_localize("Europe/London", ambiguous="NaT", nonexistent="NaT").dt.tz_convert(
            "UTC"
        )
    return out
