"""police.uk stop-and-search CSVs.

* ``Date`` is ISO 8601 with an offset (UTC). ``month`` is the UK local month, as police.uk cuts its files
  by local time: a search at 23:30 UTC on 31 May in British Summer Time belongs to June.
* Self-defined ethnicity (2011 Census 18+1 categories, "Group - Detail") is mapped to the five broad
  Census 2021 groups, as the Home Office does; blank and "Other ethnic group - Not stated" are
  "Not stated". Officer-defined ethnicity is kept as published.
* ``Type``, ``Legislation``, gender, age range, officer-defined ethnicity and the True/False fields must
  be values police.uk publishes; anything else is rejected naming the value.
* A search needs coordinates to be placed; vehicle-only searches are kept and flagged by ``search_type``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ingest.batch import LoadContext, Processed
from ingest.csvread import Block, CsvSchema
from ingest.fields import EARLIEST_MONTH, Rejects, blank, described, nullify_blank, one_of
from ingest.fields import text as trimmed
from ingest.locate import Coordinates, locate

SCHEMA = CsvSchema(
    "police_uk_stop_search",
    (
        "Type",
        "Date",
        "Part of a policing operation",
        "Policing operation",
        "Latitude",
        "Longitude",
        "Gender",
        "Age range",
        "Self-defined ethnicity",
        "Officer-defined ethnicity",
        "Legislation",
        "Object of search",
        "Outcome",
        "Outcome linked to object of search",
        "Removal of more than just outer clothing",
    ),
)

SEARCH_TYPES = ("Person search", "Vehicle search", "Person and Vehicle search")
GENDERS = ("", "Male", "Female", "Other")
AGE_RANGES = ("", "under 10", "10-17", "18-24", "25-34", "over 34")
OFFICER_DEFINED = ("", "White", "Black", "Asian", "Mixed", "Other")
BOOLEANS = {"": None, "true": True, "false": False}

# Powers police.uk reports, grouped as the Home Office statistics group them.
LEGISLATION: dict[str, str] = {
    "Police and Criminal Evidence Act 1984 (section 1)": "s1 PACE",
    "Police and Criminal Evidence Act 1984 (section 6)": "s1 PACE",
    "Misuse of Drugs Act 1971 (section 23)": "s23 Misuse of Drugs Act",
    "Criminal Justice and Public Order Act 1994 (section 60)": "s60 CJPOA",
    "Firearms Act 1968 (section 47)": "other",
    "Criminal Justice Act 1988 (section 139B)": "other",
    "Aviation Security Act 1982 (section 27(1))": "other",
    "Crossbows Act 1987 (section 4)": "other",
    "Customs and Excise Management Act 1979 (section 163)": "other",
    "Sporting Events Act 1985 (section 7)": "other",
    "Poaching Prevention Act 1862 (section 2)": "other",
    "Deer Act 1991 (section 12)": "other",
    "Conservation of Seals Act 1970 (section 4)": "other",
    "Environmental Protection Act 1990 (section 34B )": "other",
    "Hunting Act 2004 (section 8)": "other",
    "Protection of Badgers Act 1992 (section 11)": "other",
    "Psychoactive Substances Act 2016 (s36(2))": "other",
    "Psychoactive Substances Act 2016 (s37(2))": "other",
    "Public Stores Act 1875 (section 6)": "other",
    "Wildlife and Countryside Act 1981 (section 19)": "other",
    "Terrorism Act 2000 (section 43)": "other",
    "Terrorism Act 2000 (section 43A)": "other",
    "Terrorism Act 2000 (section 47A)": "other",
    "Police Reform Act 2002 (section 1)": "other",
}

# 2011 Census group prefixes -> Census 2021 broad groups.
SELF_DEFINED_GROUPS = {
    "White": "White",
    "Asian/Asian British": "Asian",
    "Black/African/Caribbean/Black British": "Black",
    "Mixed/Multiple ethnic groups": "Mixed",
    "Other ethnic group": "Other",
}
NOT_STATED = "Not stated"


def self_defined_group(value: str) -> str | None:
    """The broad group of a police.uk self-defined ethnicity; None if it is not one police.uk uses."""
    if not value or value == "Other ethnic group - Not stated":
        return NOT_STATED
    prefix, sep, _ = value.partition(" - ")
    return SELF_DEFINED_GROUPS.get(prefix) if sep else None


@dataclass(frozen=True)
class PoliceUkStopSearch:
    """police.uk stop-and-search records."""

    name: str = "police_uk_stop_search"
    table: str = "stop_searches"
    schemas: tuple[CsvSchema, ...] = (SCHEMA,)

    def process(self, block: Block, ctx: LoadContext) -> Processed:
        """Check, classify and locate one block."""
        col = {name: trimmed(values) for name, values in block.columns.items()}
        rejects = Rejects(block.rows)
        notes: Counter[str] = Counter()

        raw_dates = pd.Series(col["Date"].to_numpy(zero_copy_only=False))
        occurred = pd.Series(pd.to_datetime(raw_dates, utc=True, format="ISO8601", errors="coerce"))
        bad_date = occurred.isna().to_numpy()
        rejects.add(
            bad_date, "Date", "bad_date", described("is not an ISO 8601 date-time: ", col["Date"], bad_date)
        )
        local = occurred.dt.tz_convert("Europe/London")
        month_index = (local.dt.year.fillna(1970) - 1970) * 12 + local.dt.month.fillna(1) - 1
        month = month_index.to_numpy(dtype=np.int64).astype("datetime64[M]").astype("datetime64[D]")
        in_range = (month >= np.datetime64(EARLIEST_MONTH)) & (month <= np.datetime64(ctx.latest_month))
        out_of_range = ~bad_date & ~in_range
        rejects.add(
            out_of_range,
            "Date",
            "bad_month",
            described(f"is outside Dec 2010 to {ctx.latest_month:%b %Y}: ", col["Date"], out_of_range),
        )

        self._check_values(col, rejects)
        legislation = col["Legislation"].to_numpy(zero_copy_only=False)
        groups = np.array(
            [self_defined_group(v) for v in col["Self-defined ethnicity"].to_numpy(zero_copy_only=False)],
            dtype=object,
        )
        unknown_ethnicity = np.array([g is None for g in groups], dtype=bool)
        rejects.add(
            unknown_ethnicity,
            "Self-defined ethnicity",
            "unknown_category",
            described(
                "is not a police.uk self-defined ethnicity: ",
                col["Self-defined ethnicity"],
                unknown_ethnicity,
            ),
        )

        located = locate(
            ctx, rejects, col["Longitude"], col["Latitude"], Coordinates("Longitude", "Latitude", 4326)
        )
        kept = rejects.kept
        notes["vehicle_only"] += int(np.count_nonzero(kept & one_of(col["Type"], ["Vehicle search"])))
        notes["self_defined_not_stated"] += int(np.count_nonzero(kept & (groups == NOT_STATED)))
        notes["officer_defined_missing"] += int(
            np.count_nonzero(kept & blank(col["Officer-defined ethnicity"]))
        )

        n = block.rows
        table = pa.table(
            {
                "search_type": col["Type"],
                "occurred_at": pa.array(
                    occurred.dt.tz_localize(None).to_numpy(), pa.timestamp("us", tz="UTC")
                ),
                "month": pa.array(month, pa.date32()),
                "part_of_operation": _booleans(col["Part of a policing operation"]),
                "operation_name": nullify_blank(col["Policing operation"]),
                "gender": nullify_blank(col["Gender"]),
                "age_range": nullify_blank(col["Age range"]),
                "self_defined_ethnicity": nullify_blank(col["Self-defined ethnicity"]),
                "self_defined_group": pa.array(np.where(unknown_ethnicity, "", groups), pa.string()),
                "officer_defined_ethnicity": nullify_blank(col["Officer-defined ethnicity"]),
                "legislation": nullify_blank(col["Legislation"]),
                "legislation_group": pa.array(
                    [LEGISLATION.get(v, NOT_STATED) for v in legislation], pa.string()
                ),
                "object_of_search": nullify_blank(col["Object of search"]),
                "outcome": nullify_blank(col["Outcome"]),
                "outcome_linked": _booleans(col["Outcome linked to object of search"]),
                "removal_more_than_outer": _booleans(col["Removal of more than just outer clothing"]),
                **located,
            }
        )
        assert table.num_rows == n
        return Processed(table=table, rejects=rejects, notes=notes)

    @staticmethod
    def _check_values(col: dict[str, pa.Array], rejects: Rejects) -> None:
        checks: list[tuple[str, tuple[str, ...] | list[str], str]] = [
            ("Type", SEARCH_TYPES, "unknown_category"),
            ("Legislation", ["", *LEGISLATION], "unknown_legislation"),
            ("Gender", GENDERS, "bad_value"),
            ("Age range", AGE_RANGES, "bad_value"),
            ("Officer-defined ethnicity", OFFICER_DEFINED, "bad_value"),
        ]
        for field, allowed, kind in checks:
            bad = ~one_of(col[field], allowed)
            rejects.add(
                bad, field, kind, described(f"is not one of police.uk's {field} values: ", col[field], bad)
            )
        for field in (
            "Part of a policing operation",
            "Outcome linked to object of search",
            "Removal of more than just outer clothing",
        ):
            values = col[field].to_numpy(zero_copy_only=False)
            bad = np.array([v.lower() not in BOOLEANS for v in values], dtype=bool)
            rejects.add(bad, field, "bad_value", described("is not True, False or blank: ", col[field], bad))


def _booleans(column: pa.Array) -> pa.Array:
    return pa.array([BOOLEANS.get(v.lower()) for v in column.to_numpy(zero_copy_only=False)], pa.bool_())
