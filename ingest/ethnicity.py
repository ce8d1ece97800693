"""Census 2021 ethnic groups: the five broad groups and the 19 detailed categories (TS021)."""

from __future__ import annotations

BROAD_GROUPS = {
    "Asian, Asian British or Asian Welsh": "Asian",
    "Black, Black British, Black Welsh, Caribbean or African": "Black",
    "Mixed or Multiple ethnic groups": "Mixed",
    "White": "White",
    "Other ethnic group": "Other",
}
DETAILED = {
    "Asian, Asian British or Asian Welsh": ("Bangladeshi", "Chinese", "Indian", "Other Asian", "Pakistani"),
    "Black, Black British, Black Welsh, Caribbean or African": ("African", "Caribbean", "Other Black"),
    "Mixed or Multiple ethnic groups": (
        "Other Mixed or Multiple ethnic groups",
        "White and Asian",
        "White and Black African",
        "White and Black Caribbean",
    ),
    "Other ethnic group": ("Any other ethnic group", "Arab"),
    "White": (
        "English, Welsh, Scottish, Northern Irish or British",
        "Gypsy or Irish Traveller",
        "Irish",
        "Other White",
        "Roma",
    ),
}
NOT_STATED = "Not stated"

# Every accepted spelling -> broad group: "Group: Detail", the full group name, or its short name.
_LOOKUP: dict[str, str] = {
    **{name.lower(): short for name, short in BROAD_GROUPS.items()},
    **{short.lower(): short for short in BROAD_GROUPS.values()},
    **{
        f"{group}: {detail}".lower(): BROAD_GROUPS[group]
        for group, details in DETAILED.items()
        for detail in details
    },
    "": NOT_STATED,
    "not stated": NOT_STATED,
}


def census_group(value: str) -> str | None:
    """The broad Census 2021 group of a recorded ethnicity; ``Not stated`` for blank; None if unknown."""
    return _LOOKUP.get(" ".join(value.split()).lower())
