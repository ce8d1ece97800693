"""Arrow tables into PostgreSQL by binary COPY: the one way the loaders write rows."""

from __future__ import annotations

import pyarrow as pa
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql
from sqlalchemy import Connection


def copy_arrow(conn: Connection, table: str, rows: pa.Table, *, freeze: bool = False) -> None:
    """COPY an Arrow table into ``table`` (a name from code) in PostgreSQL's binary format.

    Columns are matched by name, and each Arrow type must be the column's exact binary type (int32 for
    integer, int16 for smallint, date32 for date, timestamp[us, UTC] for timestamptz).
    ``freeze`` writes the rows frozen and all-visible, for a table created in this transaction.
    """
    if rows.num_rows == 0:
        return
    encoder = ArrowToPostgresBinaryEncoder(rows.schema)
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary, FREEZE {})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in rows.column_names),
        sql.SQL("true" if freeze else "false"),
    )
    dbapi = conn.connection.driver_connection
    with dbapi.cursor() as cur, cur.copy(statement) as copy:  # type: ignore[union-attr]
        copy.write(encoder.write_header())
        for batch in rows.to_batches(max_chunksize=65_536):
            copy.write(encoder.write_batch(batch))
        copy.write(encoder.finish())
