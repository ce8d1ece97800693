#!/usr/bin/env bash
# Bring up everything harmmap needs on a Debian machine, idempotently:
#   1. a Python virtual environment in .venv with harmmap installed (so .venv/bin/harmmap exists);
#   2. a reachable PostgreSQL with PostGIS: HARMMAP_DATABASE_URL if it answers, else the local cluster,
#      installing and starting it when needed;
#   3. (unless --server-only) the database, its migrations and the shipped boundaries.
# The database URL chosen is written to .harmmap.env, which harmmap's settings read.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SERVER_ONLY=0
[ "${1:-}" = "--server-only" ] && SERVER_ONLY=1

log() { printf '[harmmap setup] %s\n' "$*" >&2; }
die() { printf '[harmmap setup] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
APT_UPDATED=0

# Install the Debian packages named that are not installed yet.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "need ${missing[*]}, but this is not a Debian machine; install PostgreSQL with PostGIS yourself and set HARMMAP_DATABASE_URL"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        "${SUDO[@]}" apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- 1. Python environment -------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "harmmap needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)"
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi
STAMP=.venv/.harmmap-installed
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    log "installing harmmap and its pinned dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$WANT" > "$STAMP"
fi
HARMMAP=.venv/bin/harmmap
# GDAL's command-line tools: the OGC API tests drive the service with ogrinfo/ogr2ogr, as QGIS would.
command -v ogrinfo >/dev/null || apt_install gdal-bin
# The web map's tests drive Debian's Chromium with Playwright; the export tests read PDFs with poppler.
command -v chromium >/dev/null || apt_install chromium
command -v pdftotext >/dev/null || apt_install poppler-utils

# --- 1b. The web map's MapLibre GL JS, from the npm registry (served by harmmap itself: no CDN) ------
command -v npm >/dev/null || apt_install nodejs npm
LOCK_STAMP=web/node_modules/.harmmap-installed
LOCK_WANT=$(cat web/package.json web/package-lock.json | sha256sum | cut -d' ' -f1)
if [ "$(cat "$LOCK_STAMP" 2>/dev/null)" != "$LOCK_WANT" ]; then
    log "installing the web map's npm packages (npm ci in web/)"
    npm ci --prefix web --no-audit --no-fund --loglevel=error >/dev/null
    echo "$LOCK_WANT" > "$LOCK_STAMP"
fi

# --- 2. PostgreSQL with PostGIS --------------------------------------------------------------
ping_url() { HARMMAP_DATABASE_URL="$1" "$HARMMAP" db ping >/dev/null 2>&1; }

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

ensure_local_postgres() {
    if ! command -v pg_lsclusters >/dev/null || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
        apt_install postgresql
    fi
    local version port status
    version=$(pg_lsclusters -h 2>/dev/null | awk '{print $1}' | sort -n | tail -1)
    if [ -z "$version" ]; then
        version=$(ls /usr/lib/postgresql | sort -n | tail -1)
        log "creating PostgreSQL $version cluster 'main'"
        "${SUDO[@]}" pg_createcluster "$version" main >/dev/null
    fi
    # The PostGIS build must match the server's major version.
    apt_install "postgresql-$version-postgis-3"
    read -r port status < <(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3, $4}')
    if [ "${status%%,*}" != "online" ]; then
        log "starting PostgreSQL $version cluster 'main' on port $port"
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p "$port" && break
        sleep 1
    done
    pg_isready -q -h 127.0.0.1 -p "$port" || die "PostgreSQL $version did not come up on 127.0.0.1:$port"

    # Machines set up for development trust local TCP connections as postgres; a stock Debian cluster
    # asks for a password, so give harmmap its own local role instead.
    local trusted="postgresql+psycopg://postgres@127.0.0.1:$port/harmmap"
    if ping_url "$trusted"; then
        DATABASE_URL=$trusted
        return
    fi
    DATABASE_URL="postgresql+psycopg://harmmap:harmmap@127.0.0.1:$port/harmmap"
    ping_url "$DATABASE_URL" && return
    log "creating local role 'harmmap' (development only)"
    as_postgres psql -q -p "$port" -v ON_ERROR_STOP=1 <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'harmmap') THEN
        -- Superuser because PostGIS is not a trusted extension and the tests create scratch databases.
        CREATE ROLE harmmap LOGIN SUPERUSER PASSWORD 'harmmap';
    END IF;
END
$$;
SQL
    ping_url "$DATABASE_URL" || die "cannot connect to the local PostgreSQL as harmmap on port $port"
}

if [ -n "${HARMMAP_DATABASE_URL:-}" ] && ping_url "$HARMMAP_DATABASE_URL"; then
    log "using the PostgreSQL in HARMMAP_DATABASE_URL"
    DATABASE_URL=$HARMMAP_DATABASE_URL
else
    [ -n "${HARMMAP_DATABASE_URL:-}" ] && log "HARMMAP_DATABASE_URL does not answer; using the local cluster"
    ensure_local_postgres
fi
export HARMMAP_DATABASE_URL=$DATABASE_URL
umask 077
printf 'HARMMAP_DATABASE_URL=%s\n' "$DATABASE_URL" > .harmmap.env
umask 022
log "database: $("$HARMMAP" db ping | cut -d, -f1)"

[ "$SERVER_ONLY" -eq 1 ] && exit 0

# --- 3. Database, schema, boundaries -----------------------------------------------------------
"$HARMMAP" db create
"$HARMMAP" db upgrade
"$HARMMAP" load boundaries
"$HARMMAP" weights builtin

# --- 4. Demo data: every real sample shipped in data/, plus SYNTHETIC calls for both forces -------
# Each load is idempotent (a file already loaded is skipped), so re-running setup changes nothing.
"$HARMMAP" ingest census >/dev/null
"$HARMMAP" ingest imd >/dev/null
"$HARMMAP" ingest police-uk data/police_uk/street/*/*.csv
"$HARMMAP" ingest stop-search data/police_uk/stop_and_search/*/*.csv
mkdir -p data/generated
for force in E23000030 E23000014; do
    calls="data/generated/calls-SYNTHETIC-$force-201901-201903.csv"
    [ -f "$calls" ] || "$HARMMAP" generate calls --force "$force" --months 2019-01..2019-03 --seed 2018 --out "$calls"
    "$HARMMAP" ingest calls "$calls" --force "$force"
done
log "ready"
