"""Arrow tables into PostgreSQL by binary COPY: the one way the loaders write rows."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql
from sqlalchemy import Connection


@dataclass(frozen=True)
class Encoded:
    """Rows in PostgreSQL's binary COPY format, ready to send, and the columns they fill."""

    columns: tuple[str, ...]
    chunks: tuple[bytes, ...]
    rows: int


def encode(rows: pa.Table) -> Encoded:
    """Rows in the binary COPY format.

    Columns are matched by name, and each Arrow type must be the column's exact binary type (int32 for
    integer, int16 for smallint, date32 for date, timestamp[us, UTC] for timestamptz). The encoder holds
    the GIL, so the loader encodes a block in its main thread and leaves the writer thread only sending.
    """
    if rows.num_rows == 0:
        return Encoded(tuple(rows.column_names), (), 0)
    encoder = ArrowToPostgresBinaryEncoder(rows.schema)
    chunks = [encoder.write_header()]
    for batch in rows.to_batches(max_chunksize=65_536):
        chunks.append(encoder.write_batch(batch))
    chunks.append(bytes(encoder.finish()))
    return Encoded(tuple(rows.column_names), tuple(c for c in chunks if c), rows.num_rows)


def copy_encoded(conn: Connection, table: str, encoded: Encoded, *, freeze: bool = False) -> None:
    """COPY encoded rows into ``table`` (a name from code).

    ``freeze`` writes the rows frozen and all-visible, for a table created in this transaction.
    """
    if encoded.rows == 0:
        return
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary, FREEZE {})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in encoded.columns),
        sql.SQL("true" if freeze else "false"),
    )
    dbapi = conn.connection.driver_connection
    with dbapi.cursor() as cur, cur.copy(statement) as copy:  # type: ignore[union-attr]
        for chunk in encoded.chunks:
            copy.write(chunk)


def copy_arrow(conn: Connection, table: str, rows: pa.Table, *, freeze: bool = False) -> None:
    """COPY an Arrow table into ``table`` (see ``encode`` for the types)."""
    copy_encoded(conn, table, encode(rows), freeze=freeze)
