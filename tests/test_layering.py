"""How the code is put together: domain code free of HTTP, settings built not imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from harmmap.settings import REPO_ROOT, Settings

WEB = {"fastapi", "starlette"}


@pytest.mark.parametrize("package", ["geo", "harm_index", "harmmap", "ingest"])
def test_domain_packages_never_import_the_web_framework(package: str) -> None:
    offenders = []
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO_ROOT)}: {n}" for n in names if n.split(".")[0] in WEB]
    # harmmap.cli imports app lazily inside `serve`, which is the CLI's job, not domain code.
    offenders = [o for o in offenders if not o.startswith("harmmap/cli.py")]
    assert offenders == []


def test_importing_the_app_builds_no_settings() -> None:
    """A broken environment must not break import: settings are built by create_app's caller."""
    code = "import app.main, geo.load, harmmap.cli; print('imported')"
    env = {"HARMMAP_DATABASE_URL": "sqlite:///nope.db", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_settings_read_the_harmmap_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARMMAP_PORT", "8123")
    monkeypatch.setenv("HARMMAP_DATABASE_URL", "postgresql://u:p@db.example:5433/maps")
    settings = Settings()
    assert settings.port == 8123
    assert settings.database_url == "postgresql+psycopg://u:p@db.example:5433/maps"


def test_settings_refuse_a_database_that_is_not_postgres() -> None:
    with pytest.raises(ValidationError, match="PostgreSQL"):
        Settings(database_url="sqlite:///harmmap.db")


def test_settings_refuse_development_passwords_in_production() -> None:
    with pytest.raises(ValidationError, match="production"):
        Settings(environment="production", database_url="postgresql://harmmap:harmmap@db/harmmap")
    ok = Settings(environment="production", database_url="postgresql://harmmap:s3cret-from-vault@db/harmmap")
    assert ok.db_url.password == "s3cret-from-vault"


def test_sql_lives_in_files_and_is_packaged() -> None:
    sql = sorted(p.name for p in (REPO_ROOT / "geo" / "sql").glob("*.sql"))
    assert "areas_features.sql" in sql
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"geo.sql" = ["*.sql"]' in pyproject


def test_no_module_level_settings_objects() -> None:
    for path in [*Path(REPO_ROOT / "app").rglob("*.py"), *Path(REPO_ROOT / "harmmap").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                func = node.value.func
                name = getattr(func, "id", getattr(func, "attr", ""))
                assert name not in {"Settings", "get_settings"}, f"{path}: settings built at import"
