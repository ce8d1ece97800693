"""Force-supplied recorded crime with Home Office offence codes (see docs/input-schemas.md).

Columns: ``incident_id``, ``recorded_date`` (YYYY-MM-DD), ``ho_offence_code``; a location as
``latitude``/``longitude`` or ``easting``/``northing``; optionally ``victim_ethnicity`` in the Census 2021
categories. The file's force is declared on the command line, and a record that falls in another force
is rejected, so a force's file can only ever add its own records.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingest.aggregate import aggregate_columns
from ingest.batch import LoadContext, Processed
from ingest.csvread import Block, CsvSchema
from ingest.ethnicity import NOT_STATED, census_group
from ingest.fields import Rejects, blank, described, nullify_blank
from ingest.fields import text as trimmed
from ingest.identity import reject_repeated_ids
from ingest.locate import Coordinates, locate

SCHEMA = CsvSchema(
    "force_offences",
    ("incident_id", "recorded_date", "ho_offence_code"),
    ("latitude", "longitude", "easting", "northing", "victim_ethnicity"),
    one_of=(("latitude", "longitude"), ("easting", "northing")),
)
# Home Office offence codes: a number, an optional letter, an optional decimal part (8N, 28E, 4.1, 105A).
HO_CODE = r"^\d{1,3}[A-Z]?(\.\d{1,2})?$"
EARLIEST_RECORDED = dt.date(2000, 1, 1)


@dataclass(frozen=True)
class ForceOffences:
    """Recorded crime from a force's own system."""

    name: str = "force_offences"
    table: str = "offences"
    schemas: tuple[CsvSchema, ...] = (SCHEMA,)

    def process(self, block: Block, ctx: LoadContext) -> Processed:
        """Check, locate and de-duplicate one block."""
        col = {name: trimmed(values) for name, values in block.columns.items()}
        rejects = Rejects(block.rows)
        notes: Counter[str] = Counter()

        missing_id = blank(col["incident_id"])
        rejects.add(missing_id, "incident_id", "missing_value", "is blank")
        recorded = pd.Series(
            pd.to_datetime(
                pd.Series(col["recorded_date"].to_numpy(zero_copy_only=False)),
                format="%Y-%m-%d",
                errors="coerce",
            )
        )
        bad_date = recorded.isna().to_numpy()
        rejects.add(
            bad_date,
            "recorded_date",
            "bad_date",
            described("is not a YYYY-MM-DD date: ", col["recorded_date"], bad_date),
        )
        days = recorded.to_numpy().astype("datetime64[D]")
        out_of_range = ~bad_date & (
            (days < np.datetime64(EARLIEST_RECORDED)) | (days > np.datetime64(ctx.today))
        )
        rejects.add(
            out_of_range,
            "recorded_date",
            "bad_month",
            described(f"is outside 2000-01-01 to {ctx.today}: ", col["recorded_date"], out_of_range),
        )
        code = pc.utf8_upper(col["ho_offence_code"])
        bad_code = ~np.asarray(
            pc.match_substring_regex(code, HO_CODE).to_numpy(zero_copy_only=False), dtype=bool
        )
        rejects.add(
            bad_code,
            "ho_offence_code",
            "bad_code",
            described("is not a Home Office offence code: ", col["ho_offence_code"], bad_code),
        )

        victim = col.get("victim_ethnicity")
        groups = np.full(block.rows, NOT_STATED, dtype=object)
        if victim is not None:
            groups = np.array([census_group(v) for v in victim.to_numpy(zero_copy_only=False)], dtype=object)
            unknown = np.array([g is None for g in groups], dtype=bool)
            rejects.add(
                unknown,
                "victim_ethnicity",
                "unknown_category",
                described("is not a Census 2021 ethnic group: ", victim, unknown),
            )

        if "latitude" in col and "longitude" in col:
            located = locate(
                ctx, rejects, col["longitude"], col["latitude"], Coordinates("longitude", "latitude", 4326)
            )
        else:
            located = locate(
                ctx, rejects, col["easting"], col["northing"], Coordinates("easting", "northing", 27700)
            )
        reject_repeated_ids(
            ctx, block, "offences", col["incident_id"], located["force_code"], "incident_id", rejects
        )
        notes["victim_ethnicity_not_stated"] += int(np.count_nonzero(rejects.kept & (groups == NOT_STATED)))

        month = days.astype("datetime64[M]").astype("datetime64[D]")
        table = pa.table(
            {
                "incident_id": col["incident_id"],
                "recorded_date": pa.array(days, pa.date32(), mask=bad_date),
                "month": pa.array(month, pa.date32(), mask=bad_date),
                "ho_offence_code": code,
                "victim_ethnicity": nullify_blank(victim)
                if victim is not None
                else pa.nulls(block.rows, pa.string()),
                "victim_group": pa.array(np.where(groups == None, "", groups), pa.string()),  # noqa: E711
                **located,
            }
        )
        aggregate = aggregate_columns(table, table["ho_offence_code"])
        return Processed(table=table, rejects=rejects, notes=notes, aggregate=aggregate)
