"""Classed colour scales for choropleths: one classification for the web map, print maps and downloads.

Breaks come from mapclassify (quantiles, or Fisher-Jenks natural breaks, which is exact and needs no
random start), or are fixed by the layer where the scale has a meaning of its own (ratios around 1,
deciles, hot spot classes). Palettes are colour-blind safe: ColorBrewer's sequential YlOrRd and diverging
PuOr (both marked safe by ColorBrewer) and the Okabe-Ito set for categories.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import mapclassify
import numpy as np

from harmmap.errors import InvalidParameterError

METHODS = ("quantiles", "natural_breaks")
MIN_CLASSES, MAX_CLASSES = 3, 7
NO_VALUE_COLOUR = "#d9d9d9"
JENKS_SAMPLE = 4000

# ColorBrewer YlOrRd and PuOr, 3 to 7 classes.
_SEQUENTIAL = {
    3: ["#ffeda0", "#feb24c", "#f03b20"],
    4: ["#ffffb2", "#fecc5c", "#fd8d3c", "#e31a1c"],
    5: ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"],
    6: ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026"],
    7: ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"],
}
_DIVERGING = {
    3: ["#998ec3", "#f7f7f7", "#f1a340"],
    4: ["#5e3c99", "#b2abd2", "#fdb863", "#e66101"],
    5: ["#5e3c99", "#b2abd2", "#f7f7f7", "#fdb863", "#e66101"],
    6: ["#542788", "#998ec3", "#d8daeb", "#fee0b6", "#f1a340", "#b35806"],
    7: ["#542788", "#998ec3", "#d8daeb", "#f7f7f7", "#fee0b6", "#f1a340", "#b35806"],
}
# Ten-class sequential for deciles (1 = most deprived gets the darkest).
_DECILES = [
    "#800026",
    "#bd0026",
    "#e31a1c",
    "#fc4e2a",
    "#fd8d3c",
    "#feb24c",
    "#fed976",
    "#ffeda0",
    "#ffffcc",
    "#f7fbff",
]
OKABE_ITO = ["#D55E00", "#E69F00", "#F0E442", "#56B4E9", "#0072B2", "#009E73", "#CC79A7", "#999999"]


@dataclass
class Classes:
    """Class i holds values in (bins[i-1], bins[i]] (the first from ``lower``); or named categories."""

    method: str
    colours: list[str]
    labels: list[str]
    bins: list[float] = field(default_factory=list)
    lower: float | None = None
    categories: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    no_value_colour: str = NO_VALUE_COLOUR

    def assign(self, value: float | str | None) -> int | None:
        """The class index of a value, or None when it has none (no value, or withheld)."""
        if value is None:
            return None
        if self.categories:
            return self.categories.index(str(value)) if str(value) in self.categories else None
        if isinstance(value, str) or math.isnan(value):
            return None
        for i, upper in enumerate(self.bins):
            if value <= upper:
                return i
        return len(self.bins) - 1


def check_method(method: str, k: int) -> None:
    """Refuse an unknown classification method or class count, naming the parameter."""
    if method not in METHODS:
        raise InvalidParameterError("classes", f"{method!r} is not a classification", allowed=list(METHODS))
    if not MIN_CLASSES <= k <= MAX_CLASSES:
        raise InvalidParameterError("k", f"{k} classes: use {MIN_CLASSES} to {MAX_CLASSES}")


def classify(
    values: Sequence[float | None], method: str = "quantiles", k: int = 5, *, scale: str = "sequential"
) -> Classes:
    """Class breaks for ``values`` (None left out) by ``method``, with a palette for ``scale``."""
    check_method(method, k)
    data = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    distinct = np.unique(data)
    # Fewer distinct values than classes would give empty or repeated classes.
    k = max(1, min(k, len(distinct)))
    if k < MIN_CLASSES:
        bins = [float(v) for v in distinct]
    elif method == "quantiles":
        bins = [float(b) for b in mapclassify.Quantiles(data, k=k).bins]
    else:
        # Fisher-Jenks is quadratic in the values: many areas (H3 cells) are classed on evenly spaced
        # order statistics, which keep the distribution's shape, then the top break is the true maximum.
        sample = np.sort(data)
        if len(sample) > JENKS_SAMPLE:
            sample = sample[np.linspace(0, len(sample) - 1, JENKS_SAMPLE).round().astype(int)]
        bins = [float(b) for b in mapclassify.FisherJenks(sample, k=k).bins]
    bins = sorted(set(bins))
    lower = float(data.min()) if len(data) else None
    palette = _palette(scale, len(bins))
    classes = Classes(
        method=method, colours=palette, labels=_range_labels(lower, bins), bins=bins, lower=lower
    )
    classes.counts = _counts(classes, data)
    return classes


def fixed(
    values: Sequence[float | None], bins: Sequence[float], *, scale: str, method: str = "fixed"
) -> Classes:
    """Classes with breaks chosen by the layer, the same whatever the data, so maps compare.

    ``deciles`` classes are the values 1..10 themselves; otherwise a last class, open above, follows the
    highest break.
    """
    data = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    lower = float(data.min()) if len(data) else None
    if method == "deciles":
        edges = [float(b) for b in bins]
        labels = [f"{b:g}" for b in edges]
        palette = _DECILES[: len(edges)]
    else:
        top = max(float(data.max()) if len(data) else bins[-1], bins[-1])
        edges = [*map(float, bins), top]
        labels = [*_range_labels(lower, bins), f"> {_number(bins[-1])}"]
        palette = _palette(scale, len(edges))
    classes = Classes(method=method, colours=palette, labels=labels, bins=edges, lower=lower)
    classes.counts = _counts(classes, data)
    return classes


def categorical(values: Sequence[str | None], categories: Sequence[str], colours: Sequence[str]) -> Classes:
    """Classes that are named categories, in the order given."""
    classes = Classes(
        method="categories", colours=list(colours), labels=list(categories), categories=list(categories)
    )
    classes.counts = [sum(1 for v in values if v == c) for c in categories]
    return classes


def _palette(scale: str, n: int) -> list[str]:
    if n < MIN_CLASSES:
        return (_DIVERGING if scale == "diverging" else _SEQUENTIAL)[MIN_CLASSES][-n:] if n else []
    return (_DIVERGING if scale == "diverging" else _SEQUENTIAL)[n]


def _counts(classes: Classes, data: np.ndarray) -> list[int]:
    counts = [0] * len(classes.bins)
    for value in data:
        index = classes.assign(float(value))
        if index is not None:
            counts[index] += 1
    return counts


def _number(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _range_labels(lower: float | None, bins: Sequence[float]) -> list[str]:
    labels = []
    start = lower
    for i, upper in enumerate(bins):
        if start is None or i == 0 and start >= upper:
            labels.append(f"<= {_number(upper)}")
        else:
            labels.append(f"{_number(start)} - {_number(upper)}")
        start = upper
    return labels
