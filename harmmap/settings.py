"""Service settings, read from ``HARMMAP_*`` environment variables.

Settings are built by :func:`get_settings` (or passed to ``create_app``), never at import, so tests and
tools can build as many differently-configured instances as they need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from geo.levels import FORCE_CODE

REPO_ROOT = Path(__file__).resolve().parent.parent

# The bootstrap script's local-development credentials; refused anywhere but development.
DEVELOPMENT_PASSWORDS = frozenset({"harmmap", "postgres", "password"})


class Settings(BaseSettings):
    """Everything the service and the CLI need to know about their environment."""

    model_config = SettingsConfigDict(
        env_prefix="HARMMAP_",
        # Written by scripts/bootstrap.sh so that .venv/bin/harmmap finds the database it chose.
        env_file=REPO_ROOT / ".harmmap.env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/harmmap"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = REPO_ROOT / "data"
    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_connect_timeout_s: int = Field(default=5, ge=1, le=120)
    db_statement_timeout_ms: int = Field(default=30_000, ge=100)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Analysis periods (YYYY-MM): the 5-year baseline from April 2018, and the COVID restrictions.
    baseline_start: str = "2018-04"
    baseline_end: str = "2023-03"
    covid_start: str = "2020-03"
    covid_end: str = "2021-06"
    # Disclosure control for non-analyst outputs: counts from 1 to this are withheld.
    disclosure_threshold: int = Field(default=4, ge=0, le=100)
    # A caller reference with at least this many calls in any window of this many days is persistent.
    persistent_min_calls: int = Field(default=10, ge=2)
    persistent_window_days: int = Field(default=30, ge=1, le=366)
    # Community trauma score domain weights (harm, calls, police powers, deprivation); normalised to 1.
    trauma_weights: dict[str, float] = Field(
        default_factory=lambda: {"harm": 0.35, "calls": 0.20, "police_powers": 0.20, "deprivation": 0.25}
    )
    # The web map: where its page and the npm-installed MapLibre live, and an optional basemap (an XYZ
    # raster tile URL template). None by default: networks may be closed, and outlines give context.
    web_dir: Path = REPO_ROOT / "web"
    basemap_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    basemap_attribution: str = ""
    # Access: the pilot forces a lead key sees force-held aggregates of.
    pilot_forces: list[str] = Field(default_factory=lambda: ["E23000030", "E23000014"])
    # Optional OIDC bearer tokens: all three or none. Role and force come from the two claims.
    oidc_jwks_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_role_claim: str = "harmmap_role"
    oidc_force_claim: str = "harmmap_force"
    oidc_refresh_cooldown_s: float = Field(default=30.0, ge=0)
    # Limits. Rates use the `limits` notation, per key (per client address when anonymous).
    rate_limit: str = "600/minute;60/second"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    # Browser origins allowed to call the API cross-origin; none unless configured.
    cors_origins: list[str] = Field(default_factory=list)
    log_format: Literal["json", "text"] = "json"
    graceful_shutdown_s: int = Field(default=20, ge=1, le=600)
    # Rendered area tiles kept in memory per process, by ETag (data version, parameters, disclosure); 0: off.
    tile_cache_mb: int = Field(default=64, ge=0, le=4096)

    @field_validator("database_url")
    @classmethod
    def _postgres_with_psycopg(cls, value: str) -> str:
        """Accept only PostgreSQL URLs, and always talk to them through psycopg 3."""
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"HARMMAP_DATABASE_URL is not a database URL: {exc}") from None
        if url.get_backend_name() != "postgresql":
            raise ValueError(
                f"HARMMAP_DATABASE_URL must be a PostgreSQL (PostGIS) URL, not {url.get_backend_name()!r}"
            )
        if not url.database:
            raise ValueError("HARMMAP_DATABASE_URL must name a database")
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)

    @field_validator("pilot_forces")
    @classmethod
    def _force_codes(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not FORCE_CODE.match(v)]
        if bad:
            raise ValueError(f"HARMMAP_PILOT_FORCES holds codes that are not force GSS codes: {bad}")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"HARMMAP_RATE_LIMIT is not a rate such as '600/minute': {exc}") from None
        return value

    @model_validator(mode="after")
    def _oidc_all_or_nothing(self) -> Settings:
        given = [self.oidc_jwks_url, self.oidc_issuer, self.oidc_audience]
        if any(given) and not all(given):
            raise ValueError(
                "OIDC needs HARMMAP_OIDC_JWKS_URL, HARMMAP_OIDC_ISSUER and HARMMAP_OIDC_AUDIENCE together"
            )
        return self

    @model_validator(mode="after")
    def _no_development_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            password = self.db_url.password
            if not password or password in DEVELOPMENT_PASSWORDS:
                raise ValueError(
                    "HARMMAP_DATABASE_URL uses no password or a development default; "
                    "set a real credential for production"
                )
        return self

    @property
    def db_url(self) -> URL:
        """The database URL as a SQLAlchemy :class:`URL`."""
        return make_url(self.database_url)

    @property
    def boundaries_dir(self) -> Path:
        """Where the shipped boundaries and their manifest live."""
        return self.data_dir / "boundaries"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]
