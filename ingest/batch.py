"""One file is one batch: checksummed, loaded in one transaction, every row accepted or rejected.

Loading a file whose checksum is already recorded for the source is a no-op. A crash or kill during a
load rolls the whole transaction back, batch row included, so no partial batch can exist.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, Engine, text

from geo.assign import Assigner
from harmmap.errors import DataFileError, Problem
from ingest.aggregate import FLUSH_ROWS, BatchAggregate, RecentPartition
from ingest.copy import Encoded, copy_encoded, encode
from ingest.csvread import Block, CsvFile, CsvSchema
from ingest.fields import Rejects
from ingest.labels import Labels
from ingest.pipeline import Prefetch

Progress = Callable[[int, int], None]
C = TypeVar("C")

# Record tables whose incidents feed the harm aggregate (harm_counts), and the aggregate source they are.
AGGREGATED_TABLES = {"crimes": "police_uk_street", "offences": "force_offences"}


def _no_progress(_done: int, _total: int) -> None:
    return None


class BlockWriter:
    """Stores blocks on the batch's connection in a second thread, one block behind the reader.

    While block N is COPY'd (PostgreSQL works on its own core), block N+1 is parsed and checked. Anything
    else that needs the connection waits for the COPY in flight first, through ``connection()``.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harmmap-copy")
        self._pending: Future[None] | None = None

    def connection(self) -> Connection:
        """The connection, once no COPY is in flight on it."""
        self.wait()
        return self._conn

    def submit(self, store: Callable[[], None]) -> None:
        """Store a block after the previous one has finished."""
        self.wait()
        self._pending = self._pool.submit(store)

    def wait(self) -> None:
        """Wait for the block in flight; its error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Finish (or, after an error, abandon) the block in flight and stop the thread."""
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


@dataclass(frozen=True)
class LoadContext:
    """What a source needs to process a block."""

    writer: BlockWriter
    batch_id: int
    path: Path
    schema: CsvSchema
    assigner: Assigner
    latest_month: dt.date
    today: dt.date
    labels: Labels
    force_code: str | None = None
    # What a source remembers between the blocks of one file (e.g. the IDs it has seen).
    state: dict[object, object] = field(default_factory=dict)

    @property
    def conn(self) -> Connection:
        """The batch's connection (waits for any block still being stored)."""
        return self.writer.connection()


@dataclass
class Processed:
    """A block after checking: the rows to store, and why the others were rejected."""

    table: pa.Table
    rejects: Rejects
    notes: Counter[str] = field(default_factory=Counter)
    # Reference layers arrive wide (one row per area) and are stored long (one row per measure).
    expand: Callable[[pa.Table], pa.Table] | None = None
    # For sources that feed harm_counts: month, key, synthetic and the located columns of every row.
    aggregate: pa.Table | None = None


class Source(Protocol):
    """A kind of input file and the table its rows go to (read-only, so frozen dataclasses fit)."""

    @property
    def name(self) -> str:
        """The source's name in ingest_batches."""
        ...

    @property
    def table(self) -> str:
        """The table its rows go to."""
        ...

    @property
    def schemas(self) -> Sequence[CsvSchema]:
        """The file formats it reads."""
        ...

    def process(self, block: Block, ctx: LoadContext) -> Processed:
        """Check, convert and locate one block's rows."""
        ...


@runtime_checkable
class StagedSource(Source, Protocol[C]):
    """A source whose checks split in two: ``check`` runs on its own thread, a block ahead of ``finish``.

    ``check`` must not use the connection or anything remembered between blocks (``ctx.state``,
    ``ctx.labels``); whatever does belongs in ``finish``, which sees blocks in file order.
    """

    def check(self, block: Block, ctx: LoadContext) -> C:
        """The checks that need only the block itself and the (read-only) areas."""
        ...

    def finish(self, block: Block, checked: C, ctx: LoadContext) -> Processed:
        """The rest of ``process``, given what ``check`` found."""
        ...

    def end(self, ctx: LoadContext) -> None:
        """After the last block is stored, in the batch's transaction."""
        ...


def _checking(source: Source, blocks: Prefetch[Block], ctx: LoadContext) -> Prefetch[tuple[Block, Any]]:
    """The file's blocks (parsed on their own thread), checked (``StagedSource.check``) on another."""
    return Prefetch(_checked(source, blocks, ctx), "harmmap-check")


def _checked(
    source: Source, blocks: Prefetch[Block], ctx: LoadContext
) -> Generator[tuple[Block, Any], None, None]:
    with blocks:
        for block in blocks:
            yield block, (source.check(block, ctx) if isinstance(source, StagedSource) else None)


@dataclass
class IngestReport:
    """What loading one file did. ``accepted + rejected == data_rows`` always."""

    file: str
    source: str
    batch_id: int
    status: str
    data_rows: int = 0
    accepted: int = 0
    rejected: int = 0
    blank_lines: int = 0
    rejected_by_kind: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    # Time spent keeping the monthly harm aggregate, by phase (count, combine, write, index). Each phase
    # is timed by one thread only.
    aggregate_phases: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def rows_per_s(self) -> float:
        """Data rows handled per second."""
        return self.data_rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def aggregate_seconds(self) -> float:
        """Time spent on the aggregate, summed over its phases (counting and combining overlap the COPY)."""
        return sum(self.aggregate_phases.values())

    @contextmanager
    def timing(self, phase: str) -> Generator[None, None, None]:
        """Add the time the block takes to an aggregate ``phase``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.aggregate_phases[phase] += time.perf_counter() - started


def sha256_file(path: Path, stop: threading.Event | None = None) -> tuple[str, int]:
    """The file's SHA-256 and size in bytes (or where it got to when ``stop`` was set)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while (stop is None or not stop.is_set()) and (chunk := fh.read(8 << 20)):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@contextmanager
def _checksum_beside(path: Path) -> Generator[Future[tuple[str, int]], None, None]:
    """The file's checksum, read on a thread of its own (hashlib releases the GIL) beside the load.

    Leaving the block stops a checksum nobody waited for (the load failed) and joins the thread.
    """
    stop = threading.Event()
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harmmap-sha256")
    try:
        yield hashing.submit(sha256_file, path, stop)
    finally:
        stop.set()
        hashing.shutdown(wait=True)


def ingest_file(
    engine: Engine,
    path: Path,
    source: Source,
    *,
    force_code: str | None = None,
    synthetic: bool = False,
    progress: Progress = _no_progress,
    today: dt.date | None = None,
) -> IngestReport:
    """Load one file as one batch; refuse it whole if its header is not the source's format."""
    clock = time.perf_counter()
    reader = CsvFile(path, source.schemas)
    size = path.stat().st_size
    started = dt.datetime.now(dt.UTC)
    today = today or dt.date.today()
    # The first blocks are parsed while the areas are fetched.
    blocks = Prefetch(reader.blocks(), "harmmap-read")
    with _checksum_beside(path) as checksum, blocks, engine.begin() as conn:
        # A bulk load runs as long as the file needs; the timeout protects interactive queries.
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        # One load per source at a time, so duplicate checks see every earlier batch.
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"harmmap-ingest:{source.name}"}
        )
        assigner = Assigner.from_store(conn)
        writer = BlockWriter(conn)
        ctx = LoadContext(
            writer=writer,
            batch_id=0,  # until the batch is recorded; check() does not use it
            path=path,
            schema=reader.schema,
            assigner=assigner,
            latest_month=today.replace(day=1),
            today=today,
            labels=Labels(writer.connection),
            force_code=force_code,
        )
        # Checking starts at once. A file can only be one already loaded if a batch of the source has
        # its size; then the checksum is awaited and an identical file's first blocks are thrown away.
        # Otherwise the checksum is read beside the load and recorded at its end.
        with _checking(source, blocks, ctx) as checking:
            same_size = conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM ingest_batches WHERE source = :source AND bytes = :bytes)"
                ),
                {"source": source.name, "bytes": size},
            ).scalar_one()
            sha256: str | None = None
            if same_size:
                sha256 = _checksum(path, checksum, size)
                existing = conn.execute(
                    text("SELECT id FROM ingest_batches WHERE source = :source AND sha256 = :sha"),
                    {"source": source.name, "sha": sha256},
                ).scalar()
                if existing is not None:
                    return _already_loaded(conn, int(existing), path, source)
            if getattr(source, "replaces", False):
                # A reference layer is one edition at a time: a new file replaces the old one whole.
                conn.execute(
                    text("DELETE FROM ingest_batches WHERE source = :source"), {"source": source.name}
                )
            # Until the checksum is read the batch holds a placeholder: unique, and never committed.
            batch_id = _record_batch(
                conn, source, path, sha256 or secrets.token_hex(32), size, force_code, synthetic, started
            )
            ctx = replace(ctx, batch_id=batch_id)
            report = IngestReport(file=path.name, source=source.name, batch_id=batch_id, status="loaded")
            # The aggregate is counted and combined in this thread; the writer only stores its rows.
            aggregate = (
                BatchAggregate.start(writer.connection, AGGREGATED_TABLES[source.table])
                if source.table in AGGREGATED_TABLES
                else None
            )
            recent = RecentPartition(batch_id)
            done = 0
            progress(0, size)
            try:
                for block, checked in checking:
                    processed = (
                        source.finish(block, checked, ctx)
                        if isinstance(source, StagedSource)
                        else source.process(block, ctx)
                    )
                    ready = _ready_block(block, processed, batch_id, aggregate, report)
                    writer.submit(partial(_store_block, conn, source.table, block, processed, ready, report))
                    if aggregate is not None and ready.counted is not None:
                        aggregate.add(ready.counted)
                        if aggregate.pending_rows >= FLUSH_ROWS:
                            _flush_aggregate(conn, writer, batch_id, aggregate, recent, report, final=False)
                    done += block.bytes_read
                    progress(done, size)
                if aggregate is not None:
                    # The last counts are combined while the last block is stored.
                    _flush_aggregate(conn, writer, batch_id, aggregate, recent, report, final=True)
            finally:
                writer.close()
            if isinstance(source, StagedSource):
                source.end(ctx)
            if aggregate is not None:
                _attach_aggregate(conn, recent, report)
            sha256 = sha256 or _checksum(path, checksum, size)
            report.seconds = time.perf_counter() - clock
            conn.execute(
                text(
                    "UPDATE ingest_batches SET data_rows = :rows, blank_lines = :blank, accepted = :acc, "
                    "rejected = :rej, finished_at = :end, seconds = :secs, notes = CAST(:notes AS jsonb), "
                    "synthetic = synthetic OR :synthetic, sha256 = :sha WHERE id = :id"
                ),
                {
                    "rows": report.data_rows,
                    "blank": report.blank_lines,
                    "acc": report.accepted,
                    "rej": report.rejected,
                    "end": dt.datetime.now(dt.UTC),
                    "secs": report.seconds,
                    "notes": _json(report),
                    "synthetic": report.notes.get("synthetic_rows", 0) > 0,
                    "sha": sha256,
                    "id": batch_id,
                },
            )
    return report


def _record_batch(
    conn: Connection,
    source: Source,
    path: Path,
    sha256: str,
    size: int,
    force_code: str | None,
    synthetic: bool,
    started: dt.datetime,
) -> int:
    """A new ingest_batches row for the file, its counts to come; its id."""
    return int(
        conn.execute(
            text(
                "INSERT INTO ingest_batches (source, file_name, sha256, bytes, force_code, synthetic, "
                "data_rows, blank_lines, accepted, rejected, started_at, finished_at, seconds) "
                "VALUES (:source, :file, :sha, :bytes, :force, :synthetic, 0, 0, 0, 0, :now, :now, 0) "
                "RETURNING id"
            ),
            {
                "source": source.name,
                "file": path.name,
                "sha": sha256,
                "bytes": size,
                "force": force_code,
                "synthetic": synthetic,
                "now": started,
            },
        ).scalar_one()
    )


def _flush_aggregate(
    conn: Connection,
    writer: BlockWriter,
    batch_id: int,
    aggregate: BatchAggregate,
    recent: RecentPartition,
    report: IngestReport,
    final: bool,
) -> None:
    """Combine the counts held (all of them when ``final``) and have the writer store them."""
    with report.timing("combine"):
        rows = aggregate.flush(batch_id, final=final)
    writer.submit(partial(_write_counts, conn, recent, rows, report))


def _write_counts(conn: Connection, recent: RecentPartition, rows: pa.Table, report: IngestReport) -> None:
    with report.timing("write"):
        recent.write(conn, rows)


def _attach_aggregate(conn: Connection, recent: RecentPartition, report: IngestReport) -> None:
    """Index the batch's harm_recent partition and attach it.

    The aggregate moves with the batch, in the same transaction; the batch's counts are read from its
    own partition until harm_recent_fold moves them.
    """
    with report.timing("index"):
        recent.attach(conn)


def _checksum(path: Path, checksum: Future[tuple[str, int]], size: int) -> str:
    """The file's SHA-256, once read; a file whose size changed meanwhile is refused."""
    sha256, hashed = checksum.result()
    if hashed != size:
        raise DataFileError(
            [Problem(str(path), "file", "size", f"changed while loading ({size:,} bytes, then {hashed:,})")]
        )
    return sha256


@dataclass(frozen=True)
class _Stored:
    """A block made ready to store: its accepted rows, its rejects and its aggregate counts."""

    rows: Encoded
    accepted: int
    rejects: Encoded
    reject_kinds: list[str]
    counted: pa.Table | None


def _ready_block(
    block: Block, processed: Processed, batch_id: int, aggregate: BatchAggregate | None, report: IngestReport
) -> _Stored:
    """The tables a block's rows are stored as (built in the main thread, so the writer only COPYs)."""
    kept = processed.rejects.kept
    counted = None
    if aggregate is not None and processed.aggregate is not None:
        with report.timing("count"):
            counted = aggregate.count(processed.aggregate.filter(pa.array(kept)))
    rows = processed.table.filter(pa.array(kept))
    rows = rows.add_column(0, "line", pa.array(block.lines[kept], pa.int32()))
    rows = rows.add_column(0, "batch_id", pa.array(np.full(rows.num_rows, batch_id, dtype=np.int32)))

    bad = ~kept
    bad_lines = block.lines[bad]
    rejects = pa.table(
        {
            "batch_id": pa.array(np.full(int(bad.sum()) + len(block.rejects), batch_id, dtype=np.int32)),
            "line": pa.array(np.concatenate((bad_lines, [r.line for r in block.rejects])).astype(np.int32)),
            "field": pa.array(
                [*processed.rejects.field[bad], *(r.field for r in block.rejects)], pa.string()
            ),
            "kind": pa.array([*processed.rejects.kind[bad], *(r.kind for r in block.rejects)], pa.string()),
            "reason": pa.array(
                [*processed.rejects.reason[bad], *(r.reason for r in block.rejects)], pa.string()
            ),
            "raw": pa.array([*block.raw_lines(bad_lines), *(r.raw for r in block.rejects)], pa.string()),
        }
    )
    return _Stored(
        encode(processed.expand(rows) if processed.expand else rows),
        rows.num_rows,
        encode(rejects),
        rejects.column("kind").to_pylist(),
        counted,
    )


def _store_block(
    conn: Connection, table: str, block: Block, processed: Processed, ready: _Stored, report: IngestReport
) -> None:
    copy_encoded(conn, table, ready.rows)
    copy_encoded(conn, "ingest_rejects", ready.rejects)

    report.data_rows += block.rows + len(block.rejects)
    report.accepted += ready.accepted
    report.rejected += ready.rejects.rows
    report.blank_lines += block.blank_lines
    report.rejected_by_kind.update(ready.reject_kinds)
    report.notes.update(processed.notes)


def _already_loaded(conn: Connection, batch_id: int, path: Path, source: Source) -> IngestReport:
    row = conn.execute(
        text("SELECT data_rows, accepted, rejected, blank_lines FROM ingest_batches WHERE id = :id"),
        {"id": batch_id},
    ).one()
    kinds = conn.execute(
        text("SELECT kind, count(*) FROM ingest_rejects WHERE batch_id = :id GROUP BY kind"), {"id": batch_id}
    ).all()
    return IngestReport(
        file=path.name,
        source=source.name,
        batch_id=batch_id,
        status="already loaded",
        data_rows=row.data_rows,
        accepted=row.accepted,
        rejected=row.rejected,
        blank_lines=row.blank_lines,
        rejected_by_kind=Counter({k: int(n) for k, n in kinds}),
    )


def _json(report: IngestReport) -> str:
    return json.dumps({"rejected_by_kind": dict(report.rejected_by_kind), **dict(report.notes)})
