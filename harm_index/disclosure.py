"""Disclosure control for outputs seen by anyone but an analyst of the force.

Counts from 1 to the threshold (default 4, as many force publications use; ONS's secure research service
uses 10) could identify people, so they are withheld; so is every rate, ratio or share built on one.
Zero is not suppressed: it discloses nothing about a person. Each withheld value is replaced by None and
its reason recorded in the row's ``withheld`` map, so a reader can tell "withheld" from "no data".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_THRESHOLD = 4

Row = dict[str, Any]


@dataclass(frozen=True)
class Disclosure:
    """The rule an output is published under."""

    threshold: int = DEFAULT_THRESHOLD
    # False for an analyst looking at their own force's figures: nothing is withheld.
    active: bool = True

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError("the disclosure threshold cannot be negative")

    def is_disclosive(self, count: float | None) -> bool:
        """True for a count from 1 to the threshold (when the rule is active)."""
        return self.active and count is not None and 0 < count <= self.threshold

    def describe(self) -> str:
        """One line for an output's metadata."""
        if not self.active:
            return "no disclosure control (analyst view of the force's own data)"
        return f"counts of 1 to {self.threshold} are withheld, with every rate, ratio or share built on them"

    def apply(self, rows: Iterable[Row], built_on: Mapping[str, Iterable[str]]) -> list[Row]:
        """Withhold disclosive counts in ``rows`` and the values built on them.

        ``built_on`` maps each count field to the fields derived from it. Rows are changed in place and
        returned; each gets a ``withheld`` map (field -> reason), empty when nothing was withheld.
        """
        out = []
        for row in rows:
            withheld: dict[str, str] = row.setdefault("withheld", {})
            for count_field, derived in built_on.items():
                value = row.get(count_field)
                if not self.is_disclosive(value):
                    continue
                row[count_field] = None
                withheld[count_field] = f"a count of 1 to {self.threshold} is withheld (disclosure control)"
                for name in derived:
                    if name in row and name not in withheld:
                        row[name] = None
                        withheld[name] = f"built on {count_field}, a count withheld by disclosure control"
            out.append(row)
        return out
