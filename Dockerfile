# harmmap API image: slim Python, non-root, uvicorn. The database is a separate PostGIS service
# (see compose.yaml); set HARMMAP_DATABASE_URL to reach it.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY exports ./exports
COPY geo ./geo
COPY harm_index ./harm_index
COPY harmmap ./harmmap
COPY ingest ./ingest
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# The web map's MapLibre GL JS, from the npm registry as pinned by the lock file.
FROM node:20-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/map ./map

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HARMMAP_HOST=0.0.0.0 \
    HARMMAP_PORT=8000 \
    HARMMAP_DATA_DIR=/app/data \
    HARMMAP_WEB_DIR=/app/web
RUN useradd --system --uid 10001 --home-dir /app harmmap
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --chown=harmmap:harmmap data ./data
COPY --from=web --chown=harmmap:harmmap /web ./web
COPY --chown=harmmap:harmmap alembic.ini ./
USER harmmap
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health').status == 200 else 1)"
CMD ["harmmap", "serve"]
