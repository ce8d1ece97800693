"""``harmmap load boundaries``: check every file first, then write them all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection

from geo.assign import Assigner
from geo.boundaries import CheckedLayer, LayerReport, check_layer, stage_and_upsert
from geo.levels import AreaLevel
from geo.lookups import (
    CheckedLookup,
    LookupReport,
    check_lookup,
    derive_lsoa11_ward,
    stage_and_upsert_lookup,
)
from geo.manifest import read_manifest
from harmmap.errors import DataFileError, Problem

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass
class BoundaryLoadReport:
    """What one ``load boundaries`` run did, layer by layer and lookup by lookup."""

    layers: list[LayerReport] = field(default_factory=list)
    lookups: list[LookupReport] = field(default_factory=list)

    @property
    def changed(self) -> int:
        """Rows inserted, updated or deleted across everything; 0 on an idempotent re-run."""
        layers = sum(r.inserted + r.updated + r.deleted for r in self.layers)
        return layers + sum(r.inserted + r.updated + r.deleted for r in self.lookups)


def load_boundaries(conn: Connection, manifest_path: Path, progress: Progress = _quiet) -> BoundaryLoadReport:
    """Load every layer and lookup a manifest lists.

    All files are read and checked before anything is written; the writes happen in one savepoint on
    ``conn``, so any error leaves the store exactly as it was. The caller commits.
    """
    manifest = read_manifest(manifest_path)
    problems: list[Problem] = []
    layers: list[CheckedLayer] = []
    lookups: list[CheckedLookup] = []
    for spec in manifest.layers:
        progress(f"checking {spec.path.name}")
        try:
            layers.append(check_layer(spec))
        except DataFileError as exc:
            problems += exc.problems
    for lookup_spec in manifest.lookups:
        progress(f"checking {lookup_spec.path.name}")
        try:
            lookups.append(check_lookup(lookup_spec))
        except DataFileError as exc:
            problems += exc.problems
    if problems:
        raise DataFileError(problems)

    report = BoundaryLoadReport()
    with conn.begin_nested():
        for layer in layers:
            progress(f"loading {len(layer.records):,} {layer.spec.level.value} areas")
            report.layers.append(stage_and_upsert(conn, layer))
        for lookup in lookups:
            progress(f"loading {len(lookup.rows):,} rows of {lookup.spec.kind}")
            report.lookups.append(stage_and_upsert_lookup(conn, lookup))
        if {lk.spec.kind for lk in lookups} >= {"lsoa11_lsoa21", "lsoa21_ward"}:
            progress("deriving lsoa11 -> ward")
            report.lookups.append(derive_lsoa11_ward(conn))
    if {layer.spec.level for layer in layers} & {AreaLevel.LSOA11, AreaLevel.LSOA21}:
        # Built now, while boundaries are being set up, so the first ingest does not wait for it.
        progress("indexing LSOA polygons for point assignment")
        Assigner.from_store(conn)
    return report
