"""Weight schemes: the ONS CSS scheme and its derived category weights, and user-supplied schemes."""

from __future__ import annotations

from pathlib import Path

import pytest
from numpy.testing import assert_allclose
from sqlalchemy import Connection

from harm_index.weights import (
    CSS_CAVEAT,
    SchemeConflictError,
    load_scheme,
    ons_css_scheme,
    read_user_scheme,
    store_scheme,
)
from harmmap.errors import DataFileError, NotFoundError
from harmmap.settings import REPO_ROOT

FOLDER = REPO_ROOT / "data" / "harm_weights"
CSS = FOLDER / "ons_css_weights_x_policeuk_category_MOPD.csv"
VOLUMES = FOLDER / "recorded_crime_by_ho_code_EW_2002-2015.csv"
EXACT = 1e-12


@pytest.fixture(scope="module")
def css():  # type: ignore[no-untyped-def]
    return ons_css_scheme(CSS, VOLUMES)


def test_every_offence_code_has_its_published_weight(css) -> None:  # type: ignore[no-untyped-def]
    codes = css.by_kind("ho_offence_code")
    assert len(codes) == 134
    assert_allclose(codes["1"], 7973.393423, rtol=EXACT)  # murder
    assert_allclose(codes["92E"], 1.770623478, rtol=EXACT)  # possession of cannabis


def test_category_weight_is_the_volume_weighted_mean(css) -> None:  # type: ignore[no-untyped-def]
    categories = {w.key: w for w in css.weights if w.key_kind == "police_uk_category"}
    assert "Anti-social behaviour" not in categories
    assert len(categories) == 13
    robbery = categories["Robbery"]
    codes = robbery.derivation["codes"]
    by_hand = sum(c["css_weight"] * c["volume"] for c in codes.values()) / sum(
        c["volume"] for c in codes.values()
    )
    assert_allclose(robbery.weight, by_hand, rtol=EXACT)
    # Single-code categories take that code's weight exactly.
    assert_allclose(categories["Bicycle theft"].weight, 15.17572799, rtol=EXACT)


def test_codes_without_a_volume_are_listed_not_weighted_zero(css) -> None:  # type: ignore[no-untyped-def]
    violence = next(w for w in css.weights if w.key == "Violence and sexual offences")
    assert set(violence.derivation["left_out_no_volume"]) == {"106", "19J", "19K", "4.8", "8R", "8S"}
    assert all(
        violence.derivation["codes"][c]["volume"] is None for c in violence.derivation["left_out_no_volume"]
    )
    assert 7.5 < violence.weight < 7973


def test_homicide_volume_is_shared_and_the_alias_left_out(css) -> None:  # type: ignore[no-untyped-def]
    violence = next(w for w in css.weights if w.key == "Violence and sexual offences")
    codes = violence.derivation["codes"]
    assert "1/4.1/4.10/4.2" not in codes
    # 2014/15 homicide (codes 1, 4.1, 4.2, 4.10 published together): 534, a quarter each.
    assert [codes[c]["volume"] for c in ("1", "4.1", "4.2", "4.10")] == [133.5] * 4


def test_scheme_states_its_caveat(css) -> None:  # type: ignore[no-untyped-def]
    assert css.caveat == CSS_CAVEAT
    assert "Anti-social behaviour has no weight" in css.caveat


def test_stored_scheme_round_trips_and_reloading_is_a_no_op(conn: Connection, css) -> None:  # type: ignore[no-untyped-def]
    scheme_id, status = store_scheme(conn, css)
    assert status == "loaded"
    assert store_scheme(conn, css) == (scheme_id, "already loaded")
    loaded = load_scheme(conn, "ons-css")
    assert loaded.by_kind("police_uk_category") == css.by_kind("police_uk_category")


def test_unknown_scheme_names_what_exists(conn: Connection, css) -> None:  # type: ignore[no-untyped-def]
    store_scheme(conn, css)
    with pytest.raises(NotFoundError, match="no weight scheme cambridge-chi; loaded schemes: ons-css"):
        load_scheme(conn, "cambridge-chi")


def test_user_scheme_loads_and_versions_are_protected(conn: Connection, tmp_path: Path) -> None:
    path = tmp_path / "chi.csv"
    path.write_text("offence_code,weight,description\n8N,30,assault with injury\n28e,365,\n")
    scheme = read_user_scheme(path, "cambridge-chi", "2016", "Sherman et al. 2016")
    assert scheme.by_kind("ho_offence_code") == {"8N": 30.0, "28E": 365.0}
    store_scheme(conn, scheme)
    path.write_text("offence_code,weight\n8N,31\n")
    with pytest.raises(SchemeConflictError, match="already exists with different weights"):
        store_scheme(conn, read_user_scheme(path, "cambridge-chi", "2016", "x"))


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("code,weight\n8N,1\n", ["line 1", "needs 'weight' and one of 'offence_code' or 'category'"]),
        (
            "offence_code,weight\nXYZ,1\n8N,-2\n8N,abc\n",
            [
                "line 2: field 'offence_code': 'XYZ' is not a valid",
                "line 3: field 'weight': '-2'",
                "line 4: field 'weight': 'abc'",
            ],
        ),
        ("offence_code,weight\n8N,1\n8n,2\n", ["line 3: field 'offence_code': 8N repeats line 2"]),
        (
            "category,weight\nBurglary,300\nAnti-social behaviour,5\nMurder,1\n",
            ["Anti-social behaviour has no harm weight by design", "'Murder' is not a valid category"],
        ),
    ],
)
def test_bad_user_schemes_name_line_and_field(tmp_path: Path, content: str, fragments: list[str]) -> None:
    path = tmp_path / "w.csv"
    path.write_text(content)
    with pytest.raises(DataFileError) as caught:
        read_user_scheme(path, "mine", "1", "test")
    for fragment in fragments:
        assert fragment in str(caught.value)
