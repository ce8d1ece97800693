"""The monthly harm aggregate of a batch, computed while the batch streams in.

Each block's accepted rows are counted per level (LSOA 2011/2021, ward, LAD, force, H3 7-10), month and
key with Arrow's hash aggregation; the partial counts are combined once at the end of the file and COPY'd
into ``harm_monthly``. ``harm_monthly_add(batch)`` in the database computes the same from the stored rows
(used to rebuild), and the tests hold the two equal.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LEVEL_COLUMNS = {
    "lsoa11": "lsoa11_code",
    "lsoa21": "lsoa21_code",
    "ward": "ward_code",
    "local_authority": "lad_code",
    "force": "force_code",
    "h3_7": "h3_7",
    "h3_8": "h3_8",
    "h3_9": "h3_9",
    "h3_10": "h3_10",
}
GROUP = ["force_code", "month", "key", "synthetic"]
# Partial counts held before they are combined and written: bounds memory whatever the file's size. A key
# may then appear in more than one written row of the batch; every reader sums.
FLUSH_ROWS = 1_000_000


class BatchAggregate:
    """Partial counts for one batch, combined at the end."""

    def __init__(self, source: str, key_kind: str) -> None:
        self.source = source
        self.key_kind = key_kind
        self._parts: dict[str, list[pa.Table]] = {level: [] for level in LEVEL_COLUMNS}
        self.pending_rows = 0

    def add(self, rows: pa.Table) -> None:
        """Count a block's accepted rows; ``rows`` has the GROUP columns and the level columns."""
        if rows.num_rows == 0:
            return
        for level, column in LEVEL_COLUMNS.items():
            part = rows.select(GROUP).append_column("area", rows[column]).filter(pc.is_valid(rows[column]))
            if part.num_rows:
                counted = part.group_by([*GROUP, "area"], use_threads=True).aggregate([("key", "count")])
                self._parts[level].append(counted.rename_columns([*GROUP, "area", "incidents"]))
                self.pending_rows += counted.num_rows

    def table(self, batch_id: int) -> pa.Table:
        """The counts held so far as ``harm_monthly`` rows, sorted for the query index; then clears them."""
        tables = []
        for level, parts in self._parts.items():
            if not parts:
                continue
            combined = (
                pa.concat_tables(parts)
                .group_by([*GROUP, "area"], use_threads=True)
                .aggregate([("incidents", "sum")])
            )
            area = combined["area"]
            if pa.types.is_integer(area.type):
                cells = np.asarray(area.to_numpy()).view(np.uint64)
                area = pa.array(np.char.mod("%x", cells).astype(object), pa.string())
            n = combined.num_rows
            tables.append(
                pa.table(
                    {
                        "batch_id": pa.array(np.full(n, batch_id, dtype=np.int32)),
                        "source": pa.array(np.full(n, self.source, dtype=object), pa.string()),
                        "force_code": combined["force_code"],
                        "level": pa.array(np.full(n, level, dtype=object), pa.string()),
                        "month": combined["month"],
                        "area_code": area,
                        "key_kind": pa.array(np.full(n, self.key_kind, dtype=object), pa.string()),
                        "key": combined["key"],
                        "synthetic": combined["synthetic"],
                        "incidents": pc.cast(combined["incidents_sum"], pa.int32()),
                    }
                )
            )
        self._parts = {level: [] for level in LEVEL_COLUMNS}
        self.pending_rows = 0
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables).sort_by(
            [
                ("source", "ascending"),
                ("force_code", "ascending"),
                ("level", "ascending"),
                ("month", "ascending"),
                ("area_code", "ascending"),
            ]
        )


def aggregate_columns(table: pa.Table, key: pa.Array) -> pa.Table:
    """What the monthly harm aggregate groups by, for every row of a processed block."""
    return pa.table(
        {
            "force_code": table["force_code"],
            "month": table["month"],
            "key": key,
            "synthetic": pa.array(np.zeros(table.num_rows, dtype=bool)),
            **{
                c: table[c]
                for c in (
                    "lsoa11_code",
                    "lsoa21_code",
                    "ward_code",
                    "lad_code",
                    "h3_7",
                    "h3_8",
                    "h3_9",
                    "h3_10",
                )
            },
        }
    )
