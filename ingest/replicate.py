"""Scale real police.uk rows up to test and benchmark volumes.

Rows are repeated from real files; each copy's point moves by a small Gaussian jitter (about 30 m) and
gets a fresh random Crime ID (ASB rows keep their blank ID), so the result behaves like real data at
national volume without duplicating crimes. The output is for tests and benchmarks only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

JITTER_DEGREES = 0.0003


def replicate_police_uk(
    sources: Sequence[Path],
    out: Path,
    rows: int,
    seed: int,
    chunk: int = 500_000,
    months: Sequence[str] | None = None,
) -> int:
    """Write ``rows`` current-format police.uk rows to ``out``, built from ``sources``; returns rows.

    With ``months`` (YYYY-MM), each row's month is drawn from them, so the file spans a long period.
    """
    base = pa.concat_tables(
        pacsv.read_csv(
            p,
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=False,
                column_types={
                    "Longitude": pa.string(),
                    "Latitude": pa.string(),
                },
            ),
        )
        for p in sources
    )
    located = pc.and_(pc.not_equal(base["Longitude"], ""), pc.not_equal(base["Latitude"], ""))
    base = base.filter(located)
    lon = pc.cast(base["Longitude"], pa.float64()).to_numpy()
    lat = pc.cast(base["Latitude"], pa.float64()).to_numpy()
    has_id = np.asarray(pc.not_equal(base["Crime ID"], "").to_numpy(zero_copy_only=False))
    rng = np.random.default_rng(seed)
    written = 0
    with out.open("wb") as fh:
        header = True
        while written < rows:
            n = min(chunk, rows - written)
            pick = rng.integers(0, base.num_rows, n)
            part = base.take(pa.array(pick))
            ids = np.frombuffer(rng.bytes(32 * n), dtype=np.uint8).reshape(n, 32)
            hexed = [bytes(r).hex() for r in ids]
            crime_id = np.where(has_id[pick], np.array(hexed, dtype=object), "")
            part = part.set_column(0, "Crime ID", pa.array(crime_id, pa.string()))
            jitter_lon = np.round(lon[pick] + rng.normal(0, JITTER_DEGREES, n), 6)
            jitter_lat = np.round(lat[pick] + rng.normal(0, JITTER_DEGREES, n), 6)
            part = part.set_column(
                part.schema.get_field_index("Longitude"), "Longitude", pa.array(jitter_lon)
            )
            part = part.set_column(part.schema.get_field_index("Latitude"), "Latitude", pa.array(jitter_lat))
            if months:
                month_index = part.schema.get_field_index("Month")
                part = part.set_column(
                    month_index,
                    "Month",
                    pa.array(np.array(months, dtype=object)[rng.integers(0, len(months), n)]),
                )
            pacsv.write_csv(part, fh, pacsv.WriteOptions(include_header=header))
            header = False
            written += n
    return written
