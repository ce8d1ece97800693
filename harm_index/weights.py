"""Harm weight schemes: data, versioned, each weight traceable to its source.

**ONS Crime Severity Score (``ons-css``).** A weight per Home Office offence code: the average sentence
severity, in days, of offenders sentenced for that offence (ONS CSS data tool, weights current at
December 2020).

**police.uk category weights (derived, same scheme).** police.uk publishes categories, not offence
codes, and one category spans offences of very different severity (violence and sexual offences run
from 7.5 to 7,973 days). Each category's weight is the count-weighted mean of the CSS weights of its
offence codes, weighted by England and Wales police recorded crime volumes by offence code in 2014/15:

    w_category = sum_k(v_k * w_k) / sum_k(v_k)   over the category's codes k with a 2014/15 volume

* A volume published for several codes together (e.g. homicide "1; 4.1; 4.2; 4.10") is shared equally
  among those codes.
* Codes with no 2014/15 volume (mostly created after 2015: 8R, 8S, 106, 19J, 19K, the 2017 burglary
  codes) do not enter the mean; they are listed in the weight's ``derivation``. A category none of whose
  codes has a volume would fall back to the unweighted mean, flagged so.
* The alias row "1/4.1/4.10/4.2" (homicide) repeats four codes and is left out of the means.
* Anti-social behaviour has no weight: it is counted but excluded from harm.

The caveat (``CSS_CAVEAT``) travels with every output that uses these weights.

**User schemes** (e.g. a Cambridge Crime Harm Index table): a CSV of ``offence_code`` or ``category``
and ``weight``, checked line by line, loaded with ``harmmap weights load``. A scheme is identified by name
and version; loading different content under an existing name and version is refused.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from harm_index.categories import UNWEIGHTED_CATEGORIES, police_uk_category
from harmmap.errors import DataFileError, HarmmapError, NotFoundError, Problem

CSS_NAME = "ons-css"
CSS_VOLUME_YEAR = "2014/15"
CSS_VERSION = "css-2020-12+volumes-2014-15"
CSS_ALIASES = frozenset({"1/4.1/4.10/4.2"})
HO_CODE = re.compile(r"^\d{1,3}[A-Z]?(\.\d{1,2})?$")
SCHEME_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
CSS_CAVEAT = (
    "Harm uses ONS Crime Severity Score weights (average sentence severity in days; ONS CSS data tool, "
    "weights current at December 2020). police.uk category weights are England and Wales 2014/15 "
    "volume-weighted means of the CSS weights of each category's offence codes: a category spans "
    "offences of very different severity, so category-based harm assumes the national offence mix. "
    "Offence codes created after 2014/15 do not enter the means. Anti-social behaviour has no weight: "
    "it is counted but excluded from harm."
)
KEY_KINDS = ("ho_offence_code", "police_uk_category")


@dataclass(frozen=True)
class Weight:
    """One weight: for an offence code or a police.uk category."""

    key_kind: str
    key: str
    weight: float
    description: str | None = None
    derivation: dict[str, Any] | None = None


@dataclass(frozen=True)
class Scheme:
    """A versioned set of weights and what a reader must know about them."""

    name: str
    version: str
    method: str
    caveat: str
    source: str
    sha256: str
    weights: list[Weight] = field(default_factory=list)

    def by_kind(self, key_kind: str) -> dict[str, float]:
        """Weights of one kind, by key."""
        return {w.key: w.weight for w in self.weights if w.key_kind == key_kind}


class SchemeConflictError(HarmmapError):
    """A scheme name and version already holds different weights."""

    title = "Scheme version conflict"


def _sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def shipped_ons_css_scheme(data_dir: Path) -> Scheme:
    """The ONS CSS scheme from the files shipped in ``data_dir/harm_weights``."""
    folder = data_dir / "harm_weights"
    return ons_css_scheme(
        folder / "ons_css_weights_x_policeuk_category_MOPD.csv",
        folder / "recorded_crime_by_ho_code_EW_2002-2015.csv",
    )


def ons_css_scheme(weights_csv: Path, volumes_csv: Path) -> Scheme:
    """The ONS CSS scheme: offence-code weights, and police.uk category weights derived from them."""
    with weights_csv.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    code_weights: dict[str, float] = {}
    category_of: dict[str, str] = {}
    weights: list[Weight] = []
    problems: list[Problem] = []
    for line, row in enumerate(rows, start=2):
        code = (row.get("ONS_COUNTS_code") or "").strip()
        try:
            value = float(row.get("ONS_SEVERITY_weight") or "")
        except ValueError:
            problems.append(
                Problem(str(weights_csv), f"line {line}", "ONS_SEVERITY_weight", "is not a number")
            )
            continue
        category = police_uk_category(row.get("POLICE_UK_CAT_MAP_category") or "")
        if not code or category is None or not math.isfinite(value) or value < 0:
            problems.append(
                Problem(
                    str(weights_csv), f"line {line}", "ONS_COUNTS_code", "code, category or weight unusable"
                )
            )
            continue
        weights.append(
            Weight("ho_offence_code", code, value, (row.get("ONS_COUNTS_description") or "").strip())
        )
        code_weights[code] = value
        if code not in CSS_ALIASES:
            category_of[code] = category
    if problems:
        raise DataFileError(problems)

    volumes = _css_volumes(volumes_csv, set(category_of))
    members: dict[str, list[str]] = defaultdict(list)
    for code, category in category_of.items():
        members[category].append(code)
    for category, codes in sorted(members.items()):
        used = {c: volumes[c] for c in sorted(codes) if volumes.get(c, 0) > 0}
        left_out = sorted(c for c in codes if c not in used)
        if used:
            total = sum(used.values())
            value = sum(v * code_weights[c] for c, v in used.items()) / total
            method = f"volume-weighted mean of CSS weights, E&W {CSS_VOLUME_YEAR} volumes"
        else:
            value = sum(code_weights[c] for c in codes) / len(codes)
            method = "unweighted mean of CSS weights (no code in this category has a volume)"
        weights.append(
            Weight(
                "police_uk_category",
                category,
                value,
                f"derived: {method}",
                {
                    "method": method,
                    "codes": {
                        c: {"css_weight": code_weights[c], "volume": used.get(c)} for c in sorted(codes)
                    },
                    "left_out_no_volume": left_out,
                },
            )
        )
    return Scheme(
        name=CSS_NAME,
        version=CSS_VERSION,
        method="ONS Crime Severity Score by offence code; police.uk categories as the "
        f"{CSS_VOLUME_YEAR}-volume-weighted mean of their codes' weights",
        caveat=CSS_CAVEAT,
        source=f"{weights_csv.name}; {volumes_csv.name}",
        sha256=_sha256(weights_csv, volumes_csv),
        weights=weights,
    )


def _css_volumes(volumes_csv: Path, known: set[str]) -> dict[str, float]:
    """2014/15 volumes by offence code; a volume for several codes is shared equally among them."""
    volumes: dict[str, float] = defaultdict(float)
    with volumes_csv.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["financial_year"] != CSS_VOLUME_YEAR or row["row_kind"] != "offence" or not row["count"]:
                continue
            codes = [c for c in row["ho_codes"].split(";") if c in known]
            for code in codes:
                volumes[code] += int(row["count"]) / len(codes)
    return dict(volumes)


def read_user_scheme(path: Path, name: str, version: str, source: str) -> Scheme:
    """A scheme from a CSV of ``offence_code`` or ``category`` with ``weight`` (and ``description``)."""
    where = str(path)
    if not SCHEME_NAME.match(name):
        raise DataFileError(
            [Problem(where, "arguments", "name", "use lower-case letters, digits and dashes")]
        )
    if not version.strip():
        raise DataFileError([Problem(where, "arguments", "version", "is required")])
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = [
                (reader.line_num, {k.strip(): (v or "").strip() for k, v in r.items() if k}) for r in reader
            ]
    except FileNotFoundError:
        raise DataFileError([Problem(where, "file", "path", "does not exist")]) from None
    except UnicodeDecodeError as exc:
        raise DataFileError([Problem(where, "file", "encoding", f"is not UTF-8: {exc.reason}")]) from None
    keys = [k for k in ("offence_code", "category") if k in header]
    if len(keys) != 1 or "weight" not in header:
        raise DataFileError(
            [
                Problem(
                    where,
                    "line 1",
                    "header",
                    f"needs 'weight' and one of 'offence_code' or 'category'; has {header}",
                )
            ]
        )
    key_column = keys[0]
    problems: list[Problem] = []
    weights: list[Weight] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        raw_key, raw_weight = row.get(key_column, ""), row.get("weight", "")
        if key_column == "offence_code":
            key: str | None = raw_key.upper() if HO_CODE.match(raw_key.upper()) else None
            kind = "ho_offence_code"
        else:
            key = police_uk_category(raw_key)
            kind = "police_uk_category"
            if key in UNWEIGHTED_CATEGORIES:
                problems.append(
                    Problem(where, f"line {line}", key_column, f"{key} has no harm weight by design")
                )
                continue
        if key is None:
            problems.append(
                Problem(where, f"line {line}", key_column, f"{raw_key!r} is not a valid {key_column}")
            )
            continue
        try:
            value = float(raw_weight)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            problems.append(Problem(where, f"line {line}", "weight", f"{raw_weight!r} is not a number >= 0"))
            continue
        if key in seen:
            problems.append(Problem(where, f"line {line}", key_column, f"{key} repeats line {seen[key]}"))
            continue
        seen[key] = line
        weights.append(Weight(kind, key, value, row.get("description") or None))
    if not weights and not problems:
        problems.append(Problem(where, "file", "rows", "the file has no weights"))
    if problems:
        raise DataFileError(problems)
    return Scheme(
        name=name,
        version=version,
        method=f"user-supplied weights by {key_column.replace('_', ' ')}",
        caveat=f"User-supplied weights ({source}); harmmap has not checked them against their source.",
        source=source,
        sha256=_sha256(path),
        weights=weights,
    )


def store_scheme(conn: Connection, scheme: Scheme) -> tuple[int, str]:
    """Store a scheme; the same name, version and content again is a no-op, different content is refused."""
    existing = conn.execute(
        text("SELECT id, sha256 FROM weight_schemes WHERE name = :n AND version = :v"),
        {"n": scheme.name, "v": scheme.version},
    ).first()
    if existing is not None:
        if existing.sha256 != scheme.sha256:
            raise SchemeConflictError(
                f"scheme {scheme.name} version {scheme.version} already exists with different weights; "
                "give the new weights a new version"
            )
        return int(existing.id), "already loaded"
    scheme_id = int(
        conn.execute(
            text(
                "INSERT INTO weight_schemes (name, version, method, caveat, source, sha256) "
                "VALUES (:name, :version, :method, :caveat, :source, :sha256) RETURNING id"
            ),
            {
                "name": scheme.name,
                "version": scheme.version,
                "method": scheme.method,
                "caveat": scheme.caveat,
                "source": scheme.source,
                "sha256": scheme.sha256,
            },
        ).scalar_one()
    )
    conn.execute(
        text(
            "INSERT INTO weights (scheme_id, key_kind, key, weight, description, derivation) "
            "VALUES (:id, :kind, :key, :weight, :description, CAST(:derivation AS jsonb))"
        ),
        [
            {
                "id": scheme_id,
                "kind": w.key_kind,
                "key": w.key,
                "weight": w.weight,
                "description": w.description,
                "derivation": json.dumps(w.derivation) if w.derivation is not None else None,
            }
            for w in scheme.weights
        ],
    )
    return scheme_id, "loaded"


def load_scheme(conn: Connection, name: str, version: str | None = None) -> Scheme:
    """A stored scheme (its newest version unless one is named); NotFoundError lists what exists."""
    row = conn.execute(
        text(
            "SELECT id, name, version, method, caveat, source, sha256 FROM weight_schemes "
            "WHERE name = :n AND (CAST(:v AS text) IS NULL OR version = CAST(:v AS text)) "
            "ORDER BY loaded_at DESC, id DESC LIMIT 1"
        ),
        {"n": name, "v": version},
    ).first()
    if row is None:
        known = [
            f"{r.name} {r.version}"
            for r in conn.execute(text("SELECT name, version FROM weight_schemes ORDER BY name, version"))
        ]
        wanted = name + (f" version {version}" if version else "")
        raise NotFoundError(
            f"no weight scheme {wanted}; loaded schemes: {', '.join(known) or 'none'}", parameter="scheme"
        )
    # A stored scheme version never changes (store_scheme refuses different weights under it), so its
    # weights are read once per process; the key carries the content hash as well as the row.
    key = (row.id, row.name, row.version, row.sha256)
    cached = _SCHEMES.get(key)
    if cached is None:
        weights = [
            Weight(r.key_kind, r.key, float(r.weight), r.description, r.derivation)
            for r in conn.execute(
                text(
                    "SELECT key_kind, key, weight, description, derivation FROM weights WHERE scheme_id = :id"
                ),
                {"id": row.id},
            )
        ]
        cached = Scheme(row.name, row.version, row.method, row.caveat, row.source, row.sha256, weights)
        if len(_SCHEMES) > 32:
            _SCHEMES.clear()
        _SCHEMES[key] = cached
    return cached


_SCHEMES: dict[tuple[object, ...], Scheme] = {}
