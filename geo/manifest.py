"""The boundary manifest: which files to load, at which level, and how their columns map."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo.levels import AreaLevel
from harmmap.errors import DataFileError, Problem

# Lookup kinds the store has tables for, with the columns a manifest must map for each.
LOOKUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "lsoa11_lsoa21": ("lsoa11_code", "lsoa21_code", "change_code", "lad_code"),
    "lsoa21_ward": ("lsoa21_code", "ward_code", "lad_code", "force_code"),
    "lad_force": ("lad_code", "force_code"),
}

# Parent levels an area may point to, with the areas column that holds each.
PARENT_COLUMNS: dict[AreaLevel, str] = {
    AreaLevel.FORCE: "force_code",
    AreaLevel.LOCAL_AUTHORITY: "lad_code",
    AreaLevel.WARD: "ward_code",
}


@dataclass(frozen=True)
class LayerSpec:
    """One boundary file and how to read it."""

    path: Path
    level: AreaLevel
    vintage: str
    code_field: str
    name_field: str
    source: str
    parents: dict[AreaLevel, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LookupSpec:
    """One lookup CSV and how its columns map onto a lookup table."""

    path: Path
    kind: str
    columns: dict[str, str]
    source: str
    ward_vintage: str | None = None


@dataclass(frozen=True)
class Manifest:
    """Everything ``harmmap load boundaries`` loads, in load order."""

    path: Path
    layers: list[LayerSpec]
    lookups: list[LookupSpec]


def read_manifest(path: Path) -> Manifest:
    """Parse and check a manifest; every problem found is reported at once."""
    name = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError([Problem(name, "file", "path", "does not exist")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError([Problem(name, "file", "syntax", str(exc))]) from None

    problems: list[Problem] = []
    layers = [
        spec
        for i, entry in enumerate(raw.get("layer", []), start=1)
        if (spec := _layer(path, i, entry, problems)) is not None
    ]
    lookups = [
        lookup
        for i, entry in enumerate(raw.get("lookup", []), start=1)
        if (lookup := _lookup(path, i, entry, problems)) is not None
    ]
    seen: dict[tuple[AreaLevel, str], Path] = {}
    for spec in layers:
        key = (spec.level, spec.vintage)
        if key in seen:
            problems.append(
                Problem(
                    name,
                    f"layer {spec.path.name}",
                    "vintage",
                    f"{spec.level.value} {spec.vintage} is already loaded from {seen[key].name}; "
                    "one file per level and vintage",
                )
            )
        seen[key] = spec.path
    if not layers and not problems:
        problems.append(Problem(name, "file", "layer", "the manifest lists no [[layer]]"))
    if problems:
        raise DataFileError(problems)
    # Parents before children, so parent codes can be checked against what is already loaded.
    layers.sort(key=lambda spec: spec.level.rank)
    return Manifest(path=path, layers=layers, lookups=lookups)


def _required(path: Path, where: str, entry: dict[str, Any], key: str, problems: list[Problem]) -> str | None:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(str(path), where, key, "is required and must be a non-empty string"))
        return None
    return value


def _layer(path: Path, index: int, entry: dict[str, Any], problems: list[Problem]) -> LayerSpec | None:
    where = f"[[layer]] #{index}"
    before = len(problems)
    values = {
        key: _required(path, where, entry, key, problems)
        for key in ("file", "level", "vintage", "code_field", "name_field", "source")
    }
    level: AreaLevel | None = None
    if values["level"] is not None:
        try:
            level = AreaLevel(values["level"])
        except ValueError:
            allowed = ", ".join(lv.value for lv in AreaLevel)
            problems.append(
                Problem(str(path), where, "level", f"{values['level']!r} is not one of {allowed}")
            )
    parents: dict[AreaLevel, str] = {}
    for parent, column in dict(entry.get("parents", {})).items():
        try:
            parent_level = AreaLevel(parent)
        except ValueError:
            parent_level = None
        if parent_level not in PARENT_COLUMNS or (level and parent_level.rank >= level.rank):
            problems.append(
                Problem(str(path), where, f"parents.{parent}", "is not a parent level of this layer")
            )
            continue
        parents[parent_level] = str(column)
    if len(problems) > before or level is None:
        return None
    return LayerSpec(
        path=path.parent / str(values["file"]),
        level=level,
        vintage=str(values["vintage"]),
        code_field=str(values["code_field"]),
        name_field=str(values["name_field"]),
        source=str(values["source"]),
        parents=parents,
    )


def _lookup(path: Path, index: int, entry: dict[str, Any], problems: list[Problem]) -> LookupSpec | None:
    where = f"[[lookup]] #{index}"
    before = len(problems)
    file = _required(path, where, entry, "file", problems)
    kind = _required(path, where, entry, "kind", problems)
    source = _required(path, where, entry, "source", problems)
    columns = {str(k): str(v) for k, v in dict(entry.get("columns", {})).items()}
    if kind is not None and kind not in LOOKUP_COLUMNS:
        allowed = ", ".join(LOOKUP_COLUMNS)
        problems.append(Problem(str(path), where, "kind", f"{kind!r} is not one of {allowed}"))
    elif kind is not None:
        missing = [c for c in LOOKUP_COLUMNS[kind] if c not in columns]
        if missing:
            problems.append(Problem(str(path), where, "columns", f"must map {', '.join(missing)}"))
    ward_vintage = entry.get("ward_vintage")
    if kind == "lsoa21_ward" and not ward_vintage:
        problems.append(Problem(str(path), where, "ward_vintage", "is required for lsoa21_ward"))
    if len(problems) > before or file is None or kind is None or source is None:
        return None
    return LookupSpec(
        path=path.parent / file,
        kind=kind,
        columns=columns,
        source=source,
        ward_vintage=str(ward_vintage) if ward_vintage else None,
    )
