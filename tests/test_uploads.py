"""``POST /admin/uploads``: the admin's upload goes through the same loader as ``harmmap ingest``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.main import create_app
from app.routes.admin import safe_file_name
from harmmap import audit
from harmmap.settings import REPO_ROOT, Settings

STREET = REPO_ROOT / "data" / "police_uk" / "street" / "hampshire" / "2017-02-hampshire-street.csv"
STOP_SEARCH = (
    REPO_ROOT
    / "data"
    / "police_uk"
    / "stop_and_search"
    / "hampshire"
    / "2018-11-hampshire-stop-and-search.csv"
)
INJECTIONS = (
    "../../etc/passwd.csv",
    "..\\..\\windows\\win.ini",
    "'; DROP TABLE crimes;--.csv",
    "%2e%2e%2f%2e%2e%2fapp.csv",
    "/absolute/path.csv",
    "....//....//x.csv",
    "name\x00.csv",
    "<script>alert(1)</script>.csv",
)


def _store_counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(text("SELECT count(*) FROM ingest_batches")).scalar_one(),
            conn.execute(text("SELECT count(*) FROM crimes")).scalar_one(),
            conn.execute(text("SELECT count(*) FROM ingest_rejects")).scalar_one(),
        )


def _upload(
    client: TestClient, key: str, path: Path, source: str, name: str | None = None, **fields: str
) -> object:
    with path.open("rb") as fh:
        return client.post(
            "/admin/uploads",
            headers={"X-API-Key": key},
            data={"source": source, **fields},
            files={"file": (name or path.name, fh, "text/csv")},
        )


@pytest.fixture
def admin(api_keys: dict[str, str]) -> str:
    return api_keys["admin"]


def test_an_upload_loads_once_and_reports_the_counts(
    client: TestClient, engine: Engine, admin: str, fresh_batches: None
) -> None:
    response = _upload(client, admin, STREET, "police-uk")
    assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == "loaded" and body["adds_up"] is True
    assert body["accepted"] + body["rejected"] == body["data_rows"] == 14834
    assert body["file"] == STREET.name
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT accepted, rejected, data_rows FROM ingest_batches WHERE id = :b"),
            {"b": body["batch"]},
        ).one()
    assert tuple(stored) == (body["accepted"], body["rejected"], body["data_rows"])
    # Folded into the harm totals after the response was sent (the test client waits for that too).
    with engine.connect() as conn:
        recent = conn.execute(text("SELECT batch_id FROM harm_recent_batches")).scalars().all()
        folded = conn.execute(
            text("SELECT sum(incidents) FROM harm_counts WHERE batch_id = :b AND level = 1 AND span = 1"),
            {"b": body["batch"]},
        ).scalar_one()
    assert body["batch"] not in recent and folded == body["accepted"]
    # The same file again is a no-op, answered 200.
    again = _upload(client, admin, STREET, "police-uk", name="renamed.csv")
    assert again.status_code == 200  # type: ignore[attr-defined]
    assert again.json()["status"] == "already loaded" and again.json()["batch"] == body["batch"]  # type: ignore[attr-defined]
    # Both are in the audit log as ingests, with the rows loaded.
    rid = response.headers["X-Request-ID"]  # type: ignore[attr-defined]
    with engine.connect() as conn:
        [row] = audit.query(conn, request_id=rid)
    assert row.action == "ingest" and row.rows == body["accepted"] and row.status == 201
    assert row.parameters["upload"]["file"] == STREET.name


def test_a_wrong_format_upload_is_refused_and_nothing_is_stored(
    client: TestClient, engine: Engine, admin: str, fresh_batches: None
) -> None:
    before = _store_counts(engine)
    response = _upload(client, admin, STOP_SEARCH, "police-uk")
    assert response.status_code == 422  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert "header" in body["detail"].lower() or "column" in body["detail"].lower()
    assert body["invalid-params"][0]["file"] == STOP_SEARCH.name
    assert _store_counts(engine) == before


def test_an_oversized_upload_is_refused_and_nothing_is_stored(
    settings: Settings, engine: Engine, admin: str, fresh_batches: None
) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 100_000})
    before = _store_counts(engine)
    with TestClient(create_app(small)) as capped:
        response = _upload(capped, admin, STREET, "police-uk")
        assert response.status_code == 413  # type: ignore[attr-defined]
        assert "100,000-byte limit" in response.json()["detail"]  # type: ignore[attr-defined]
        # Streamed without a length: refused as it crosses the cap.
        chunks = (STREET.read_bytes()[i : i + 8192] for i in range(0, 400_000, 8192))
        boundary = "harmmapboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="source"\r\n\r\npolice-uk\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()

        def body() -> Iterator[bytes]:
            yield head
            yield from chunks
            yield f"\r\n--{boundary}--\r\n".encode()

        streamed = capped.post(
            "/admin/uploads",
            headers={"X-API-Key": admin, "Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=body(),
        )
        assert streamed.status_code == 413
    assert _store_counts(engine) == before


def test_only_an_admin_may_upload(
    client: TestClient, engine: Engine, api_keys: dict[str, str], fresh_batches: None
) -> None:
    before = _store_counts(engine)
    for holder in ("public", "analyst-hampshire", "lead"):
        assert _upload(client, api_keys[holder], STREET, "police-uk").status_code == 403  # type: ignore[attr-defined]
    with STREET.open("rb") as fh:
        anonymous = client.post("/admin/uploads", data={"source": "police-uk"}, files={"file": fh})
    assert anonymous.status_code == 403
    assert _store_counts(engine) == before


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"source": "nope'; DROP TABLE crimes;--"}, "source"),
        ({"source": "offences"}, "force"),
        ({"source": "police-uk", "force": "E23000030"}, "force"),
        ({"source": "calls", "force": "E23000030' OR 1=1"}, "force"),
        ({"source": "police-uk", "synthetic": "true"}, "synthetic"),
        ({"source": "police-uk", "extra": "x"}, "extra"),
    ],
)
def test_bad_upload_fields_name_the_field(
    client: TestClient,
    engine: Engine,
    admin: str,
    fields: dict[str, str],
    parameter: str,
    fresh_batches: None,
) -> None:
    before = _store_counts(engine)
    source = fields.pop("source")
    response = _upload(client, admin, STREET, source, **fields)
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    assert response.json()["parameter"] == parameter  # type: ignore[attr-defined]
    assert _store_counts(engine) == before


def test_an_upload_must_be_multipart(client: TestClient, admin: str) -> None:
    response = client.post(
        "/admin/uploads", headers={"X-API-Key": admin, "Content-Type": "text/csv"}, content=b"a,b\n1,2\n"
    )
    assert response.status_code == 422
    assert response.json()["parameter"] == "Content-Type"


@pytest.mark.parametrize("name", INJECTIONS)
def test_upload_names_never_become_paths(
    client: TestClient, engine: Engine, admin: str, name: str, fresh_batches: None
) -> None:
    cleaned = safe_file_name(name)
    assert "/" not in cleaned and "\\" not in cleaned and not cleaned.startswith(".")
    assert cleaned.endswith(".csv") and len(cleaned) <= 104
    response = _upload(client, admin, STOP_SEARCH, "stop-search", name=name)
    assert response.status_code in (200, 201), response.text  # type: ignore[attr-defined]
    # The client may encode the name on the way (httpx sends NUL as %00): whatever arrives is cleaned.
    stored = response.json()["file"]  # type: ignore[attr-defined]
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.csv", stored), stored
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM areas")).scalar_one() > 0
        assert conn.execute(text("SELECT to_regclass('crimes')")).scalar_one() is not None
