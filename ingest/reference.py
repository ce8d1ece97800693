"""Reference layers: English Indices of Deprivation 2019 by LSOA 2011, and Census 2021 ethnicity (TS021).

Each file is a batch like any other (checksummed, counted, rejects kept), and a new file of the same
source replaces the layer whole. Values are checked: GSS codes, ranks within 1..32,844, deciles 1..10,
resident counts that are whole and non-negative, and LSOA group counts that add up to the total.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from geo.levels import AreaLevel
from ingest.batch import LoadContext, Processed
from ingest.csvread import Block, CsvSchema
from ingest.ethnicity import BROAD_GROUPS, census_group
from ingest.fields import Rejects, described, numbers
from ingest.fields import text as trimmed

IMD_DOMAINS = (
    "IMD",
    "Income",
    "Employment",
    "Education",
    "Health",
    "Crime",
    "Housing_and_Access",
    "Environment",
)
# The sub-domain file repeats three domains of the main file; only the true sub-domains are taken from it.
IMD_SUBDOMAINS = (
    "Children_and_young_people",
    "Adult_skills",
    "Geographical_barriers",
    "Wider_barriers",
    "Indoors",
    "Outdoors",
)
IMD_LSOAS = 32_844

IMD_RANKS = CsvSchema(
    "imd2019_ranks",
    ("lsoa11_code", *(f"{d}_{k}" for d in IMD_DOMAINS for k in ("rank", "decile"))),
    ("lsoa11_name", "ltla21_name", "ltla21_code", "pfa_code", "pfa_name"),
)
IMD_SUBDOMAIN_RANKS = CsvSchema(
    "imd2019_subdomains",
    ("lsoa11_code", *(f"{d}_{k}" for d in IMD_SUBDOMAINS for k in ("rank", "decile"))),
    tuple(f"{d}_{k}" for d in ("Education", "Housing_and_Access", "Environment") for k in ("rank", "decile")),
)
CENSUS_LSOA = CsvSchema(
    "census2021_ts021_lsoa21",
    ("lsoa21_code", "total_residents", *BROAD_GROUPS),
    ("lsoa21_name", "ward24_code", "ward24_name", "ltla24_code", "ltla24_name", "pfa24_code", "pfa24_name"),
)
CENSUS_LAD = CsvSchema("census2021_ethnicity_lad", ("ltla21_code", "ltla21_name", "ethnic_group", "value"))


def _integers(values: pa.Array, rejects: Rejects, field: str, low: float, high: float) -> np.ndarray:
    parsed, blank, malformed = numbers(values)
    bad = (
        blank
        | malformed
        | ~np.isfinite(parsed)
        | (parsed != np.round(parsed))
        | (parsed < low)
        | (parsed > high)
    )
    rejects.add(
        bad, field, "bad_value", described(f"is not a whole number in {low:g}..{high:g}: ", values, bad)
    )
    return np.where(bad, 0, parsed).astype(np.int64)


def _codes(values: pa.Array, level: AreaLevel, field: str, rejects: Rejects) -> None:
    ok = np.asarray(
        pc.match_substring_regex(values, level.code_pattern.pattern).to_numpy(zero_copy_only=False)
    )
    rejects.add(~ok, field, "bad_code", described(f"is not a {level.value} GSS code: ", values, ~ok))


@dataclass(frozen=True)
class ImdRanks:
    """IoD 2019 domain (or sub-domain) ranks and deciles by LSOA 2011."""

    name: str = "imd2019"
    table: str = "imd2019_lsoa11"
    schemas: tuple[CsvSchema, ...] = (IMD_RANKS,)
    measures: tuple[str, ...] = IMD_DOMAINS
    replaces: bool = True

    def process(self, block: Block, ctx: LoadContext) -> Processed:
        """Check every rank and decile; store one row per LSOA and measure."""
        col = {name: trimmed(values) for name, values in block.columns.items()}
        rejects = Rejects(block.rows)
        _codes(col["lsoa11_code"], AreaLevel.LSOA11, "lsoa11_code", rejects)
        values = {
            (m, k): _integers(col[f"{m}_{k}"], rejects, f"{m}_{k}", 1, IMD_LSOAS if k == "rank" else 10)
            for m in self.measures
            for k in ("rank", "decile")
        }
        table = pa.table(
            {
                "lsoa11_code": col["lsoa11_code"],
                **{f"{m}_{k}": pa.array(v, pa.int64()) for (m, k), v in values.items()},
            }
        )
        measures = self.measures

        def expand(rows: pa.Table) -> pa.Table:
            n = rows.num_rows
            return pa.table(
                {
                    "batch_id": pa.array(np.tile(rows["batch_id"].to_numpy(), len(measures)), pa.int32()),
                    "lsoa11_code": pa.concat_arrays([rows["lsoa11_code"].combine_chunks()] * len(measures)),
                    "measure": pa.array(np.repeat(np.array(measures, dtype=object), n), pa.string()),
                    "rank": pa.array(
                        np.concatenate([rows[f"{m}_rank"].to_numpy() for m in measures]), pa.int32()
                    ),
                    "decile": pa.array(
                        np.concatenate([rows[f"{m}_decile"].to_numpy() for m in measures]), pa.int16()
                    ),
                }
            )

        return Processed(table=table, rejects=rejects, expand=expand)


@dataclass(frozen=True)
class ImdSubdomains(ImdRanks):
    """IoD 2019 sub-domain ranks and deciles by LSOA 2011."""

    name: str = "imd2019_subdomains"
    schemas: tuple[CsvSchema, ...] = (IMD_SUBDOMAIN_RANKS,)
    measures: tuple[str, ...] = IMD_SUBDOMAINS


@dataclass(frozen=True)
class CensusEthnicityLsoa:
    """Census 2021 TS021 usual residents by broad ethnic group, by LSOA 2021."""

    name: str = "census2021_ts021_lsoa21"
    table: str = "census2021_ethnicity"
    schemas: tuple[CsvSchema, ...] = (CENSUS_LSOA,)
    replaces: bool = True

    def process(self, block: Block, ctx: LoadContext) -> Processed:
        """Check counts add up to the total; store one row per LSOA and group."""
        col = {name: trimmed(values) for name, values in block.columns.items()}
        rejects = Rejects(block.rows)
        _codes(col["lsoa21_code"], AreaLevel.LSOA21, "lsoa21_code", rejects)
        total = _integers(col["total_residents"], rejects, "total_residents", 0, 1e6)
        groups = {g: _integers(col[g], rejects, g, 0, 1e6) for g in BROAD_GROUPS}
        summed = np.sum(np.stack(list(groups.values())), axis=0)
        off = summed != total
        reason = np.full(block.rows, None, dtype=object)
        reason[off] = [
            f"the groups sum to {s:,}, not the total {t:,}"
            for s, t in zip(summed[off], total[off], strict=True)
        ]
        rejects.add(off, "total_residents", "inconsistent", reason)
        table = pa.table({"lsoa21_code": col["lsoa21_code"], **{g: pa.array(v) for g, v in groups.items()}})

        def expand(rows: pa.Table) -> pa.Table:
            n = rows.num_rows
            names = list(BROAD_GROUPS)
            return pa.table(
                {
                    "batch_id": pa.array(np.tile(rows["batch_id"].to_numpy(), len(names)), pa.int32()),
                    "area_code": pa.concat_arrays([rows["lsoa21_code"].combine_chunks()] * len(names)),
                    "area_level": pa.array(np.full(n * len(names), "lsoa21", dtype=object), pa.string()),
                    "category": pa.array(np.repeat(np.array(names, dtype=object), n), pa.string()),
                    "broad_group": pa.array(
                        np.repeat(np.array([BROAD_GROUPS[g] for g in names], dtype=object), n), pa.string()
                    ),
                    "residents": pa.array(np.concatenate([rows[g].to_numpy() for g in names]), pa.int32()),
                }
            )

        return Processed(table=table, rejects=rejects, expand=expand)


@dataclass(frozen=True)
class CensusEthnicityLad:
    """Census 2021 residents in the 19 detailed ethnic groups, by local authority (2021 codes)."""

    name: str = "census2021_ethnicity_lad"
    table: str = "census2021_ethnicity"
    schemas: tuple[CsvSchema, ...] = (CENSUS_LAD,)
    replaces: bool = True

    def process(self, block: Block, ctx: LoadContext) -> Processed:
        """Keep the counts; the published percentages are derived from them and not stored."""
        col = {name: trimmed(values) for name, values in block.columns.items()}
        rejects = Rejects(block.rows)
        _codes(col["ltla21_code"], AreaLevel.LOCAL_AUTHORITY, "ltla21_code", rejects)
        labels = col["ethnic_group"].to_numpy(zero_copy_only=False)
        kind = np.array(
            [lab.rsplit(" (", 1)[-1].rstrip(")") if " (" in lab else "" for lab in labels], dtype=object
        )
        category = np.array([lab.rsplit(" (", 1)[0] for lab in labels], dtype=object)
        group = np.array([census_group(c) for c in category], dtype=object)
        bad = ~np.isin(kind, ["number", "percent"]) | np.array([g is None for g in group], dtype=bool)
        rejects.add(
            bad,
            "ethnic_group",
            "unknown_category",
            described("is not a Census 2021 group with (number) or (percent): ", col["ethnic_group"], bad),
        )
        counts = kind == "number"
        value = _integers(
            pc.if_else(pa.array(counts), col["value"], pa.scalar("0")), rejects, "value", 0, 1e7
        )
        notes: Counter[str] = Counter(
            {"percent_rows_derived_not_stored": int(np.count_nonzero(~counts & ~bad))}
        )
        table = pa.table(
            {
                "area_code": col["ltla21_code"],
                "category": pa.array(category, pa.string()),
                "broad_group": pa.array(np.where(bad, "", group), pa.string()),
                "residents": pa.array(value),
                "is_count": pa.array(counts),
            }
        )

        def expand(rows: pa.Table) -> pa.Table:
            rows = rows.filter(rows["is_count"])
            return pa.table(
                {
                    "batch_id": rows["batch_id"],
                    "area_code": rows["area_code"],
                    "area_level": pa.array(
                        np.full(rows.num_rows, "local_authority", dtype=object), pa.string()
                    ),
                    "category": rows["category"],
                    "broad_group": rows["broad_group"],
                    "residents": pa.array(rows["residents"].to_numpy(), pa.int32()),
                }
            )

        return Processed(table=table, rejects=rejects, notes=notes, expand=expand)
