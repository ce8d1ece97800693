"""police.uk crime categories, as written in the street-level CSVs."""

from __future__ import annotations

POLICE_UK_CATEGORIES = (
    "Anti-social behaviour",
    "Bicycle theft",
    "Burglary",
    "Criminal damage and arson",
    "Drugs",
    "Other crime",
    "Other theft",
    "Possession of weapons",
    "Public order",
    "Robbery",
    "Shoplifting",
    "Theft from the person",
    "Vehicle crime",
    "Violence and sexual offences",
)
# Anti-social behaviour is not a notifiable offence and has no severity weight: counted, never weighted.
UNWEIGHTED_CATEGORIES = ("Anti-social behaviour",)
_BY_LOWER = {name.lower(): name for name in POLICE_UK_CATEGORIES}


def police_uk_category(name: str) -> str | None:
    """The police.uk category a name refers to, whatever its case or spacing; None if none."""
    return _BY_LOWER.get(" ".join(name.split()).lower())
