"""Repeated strings (force names, categories, outcomes) stored once in ``labels``, referenced by id."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, text


class Labels:
    """Maps label text to its smallint id for one load, adding labels the store has not seen."""

    def __init__(self, connection: Callable[[], Connection]) -> None:
        self._connection = connection
        self._ids: dict[tuple[str, str], int] = {}

    def ids(self, kind: str, values: pa.Array) -> pa.Array:
        """The id of each value (nulls stay null), as int16."""
        encoded = (
            pc.dictionary_encode(values).combine_chunks()
            if isinstance(values, pa.ChunkedArray)
            else (pc.dictionary_encode(values))
        )
        words = encoded.dictionary.to_pylist()
        missing = [w for w in words if (kind, w) not in self._ids]
        if missing:
            self._fetch(kind, missing)
        lookup = np.array([self._ids[(kind, w)] for w in words] or [0], dtype=np.int16)
        indices = encoded.indices
        positions = np.asarray(indices.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        ids: npt.NDArray[np.int16] = lookup[positions]
        return pa.array(ids, pa.int16(), mask=np.asarray(indices.is_null().to_numpy(zero_copy_only=False)))

    def _fetch(self, kind: str, words: list[str]) -> None:
        conn = self._connection()
        conn.execute(
            text(
                "INSERT INTO labels (kind, label) SELECT :kind, unnest(CAST(:words AS text[])) "
                "ON CONFLICT (kind, label) DO NOTHING"
            ),
            {"kind": kind, "words": words},
        )
        rows = conn.execute(
            text("SELECT label, id FROM labels WHERE kind = :kind AND label = ANY(CAST(:words AS text[]))"),
            {"kind": kind, "words": words},
        ).all()
        self._ids.update({(kind, label): int(i) for label, i in rows})
