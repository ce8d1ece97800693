"""Record identifiers that must be unique within a force (force incident IDs, call IDs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import text

from ingest.batch import LoadContext
from ingest.csvread import Block
from ingest.fields import Rejects

# Tables and their ID column; both names come from here, never from input.
UNIQUE_IDS = {"offences": "incident_id", "calls": "call_id"}


def reject_repeated_ids(
    ctx: LoadContext, block: Block, table: str, ids: pa.Array, forces: pa.Array, field: str, rejects: Rejects
) -> None:
    """Reject an ID seen earlier in this file or already stored for the same force, saying where."""
    column = UNIQUE_IDS[table]
    values = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
    force = np.asarray(forces.to_numpy(zero_copy_only=False), dtype=object)
    live = rejects.kept.copy()
    if not live.any():
        return
    frame = pd.DataFrame({"id": values[live], "force": force[live], "line": block.lines[live]})
    first = frame.groupby(["force", "id"])["line"].transform("min").to_numpy()
    repeat = np.zeros(len(values), dtype=bool)
    repeat[live] = first != frame["line"].to_numpy()
    reason = np.full(len(values), None, dtype=object)
    reason[live] = [f"{field} repeats line {f} of this file" for f in first]
    rejects.add(repeat, field, "duplicate_id", reason)

    for force_code in sorted(set(force[rejects.kept])):
        mine = rejects.kept & (force == force_code)
        stored = ctx.conn.execute(
            text(
                f"SELECT {column}, batch_id, line FROM {table} "
                f"WHERE force_code = :f AND {column} = ANY(CAST(:ids AS text[]))"
            ),
            {"f": force_code, "ids": sorted(set(values[mine]))},
        ).all()
        where = {r[0]: (r[1], r[2]) for r in stored}
        seen = mine & np.array([v in where for v in values], dtype=bool)
        reason = np.full(len(values), None, dtype=object)
        reason[seen] = [
            f"{field} already loaded for {force_code}: "
            + (
                f"line {where[v][1]} of this file"
                if where[v][0] == ctx.batch_id
                else f"batch {where[v][0]}, line {where[v][1]}"
            )
            for v in values[seen]
        ]
        rejects.add(seen, field, "duplicate_id", reason)
