"""``POST /admin/uploads``: an admin loads a CSV through the same loader as ``harmmap ingest``.

The body is streamed to a private temporary file, counted against ``HARMMAP_MAX_UPLOAD_BYTES`` as it
arrives (``app.middleware.Edge``), and loaded as one batch. The client's file name is only a label: it is
cut down to safe characters and never used as a path.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from app.deps import EngineDep, GrantDep
from harmmap.access import check_force_code
from harmmap.errors import DataFileError, InvalidParameterError
from ingest.aggregate import fold_recent
from ingest.batch import IngestReport, ingest_file
from ingest.sources import SOURCES, source_kind

router = APIRouter(prefix="/admin", tags=["admin"])

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
FIELDS = ("source", "file", "force", "synthetic")


def safe_file_name(name: str | None) -> str:
    """A label for the batch from the client's file name: safe characters only, never a path."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip("._")[:100]
    if not cleaned.lower().endswith(".csv"):
        cleaned = (cleaned or "upload") + ".csv"
    return cleaned


def _text_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameterError(name, f"{name} must be a text field, not a file")
    return value.strip()


def _summary(report: IngestReport, size: int) -> dict[str, Any]:
    return {
        "file": report.file,
        "source": report.source,
        "batch": report.batch_id,
        "status": report.status,
        "bytes": size,
        "data_rows": report.data_rows,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "adds_up": report.accepted + report.rejected == report.data_rows,
        "rejected_by_reason": dict(sorted(report.rejected_by_kind.items())),
        "blank_lines": report.blank_lines,
        "seconds": round(report.seconds, 3),
    }


def _load(
    engine: Engine, upload: UploadFile, name: str, kind_name: str, force: str | None, synthetic: bool
) -> tuple[IngestReport, int]:
    kind = source_kind(kind_name)
    with tempfile.TemporaryDirectory(prefix="harmmap-upload-") as folder:
        path = Path(folder) / name
        upload.file.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
        size = path.stat().st_size
        try:
            report = ingest_file(engine, path, kind.make(), force_code=force, synthetic=synthetic)
        except DataFileError as exc:
            # Name the file as the client did: the server's temporary path is nobody's business.
            raise DataFileError([dataclasses.replace(p, file=name) for p in exc.problems]) from None
    return report, size


@router.post(
    "/uploads",
    summary="Load a CSV as one batch (admin): the same loader as `harmmap ingest`",
    status_code=201,
    responses={
        200: {"description": "This file was loaded before; nothing changed."},
        201: {"description": "Loaded: the batch summary with accepted and rejected counts."},
        413: {"description": "The upload is over the size limit; nothing was kept."},
        422: {"description": "Not the source's format (header), or a bad field; nothing was loaded."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["source", "file"],
                        "properties": {
                            "source": {"type": "string", "enum": list(SOURCES)},
                            "file": {"type": "string", "format": "binary"},
                            "force": {"type": "string", "pattern": r"^(E23|W15)\d{6}$"},
                            "synthetic": {"type": "boolean"},
                        },
                    }
                }
            },
        }
    },
)
async def upload(request: Request, grant: GrantDep, engine: EngineDep) -> JSONResponse:
    """Stream the CSV to a private temporary file, load it as one batch, and report the counts."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidParameterError(
            "Content-Type", "send the file as multipart/form-data (fields source, file)"
        )
    try:
        form = await request.form(max_files=1, max_fields=len(FIELDS))
    except MultiPartException as exc:
        raise InvalidParameterError("body", f"the multipart body cannot be read: {exc.message}") from None
    try:
        unknown = sorted(set(form.keys()) - set(FIELDS))
        if unknown:
            raise InvalidParameterError(unknown[0], f"unknown field(s) {unknown}", allowed=FIELDS)
        kind = source_kind(_text_field(form, "source") or "")
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidParameterError("file", "attach the CSV as the multipart field 'file'")
        force = check_force_code(_text_field(form, "force") or None)
        if kind.needs_force and force is None:
            raise InvalidParameterError("force", f"a {kind.name} file needs the force that supplied it")
        if force is not None and not kind.takes_force:
            raise InvalidParameterError(
                "force", f"a {kind.name} file is not tied to a force; leave force out"
            )
        synthetic_text = (_text_field(form, "synthetic") or "false").lower()
        if synthetic_text not in ("true", "false", "1", "0"):
            raise InvalidParameterError("synthetic", "synthetic is true or false")
        synthetic = synthetic_text in ("true", "1")
        if synthetic and not kind.may_be_synthetic:
            raise InvalidParameterError("synthetic", f"only calls can be marked synthetic, not {kind.name}")
        name = safe_file_name(file.filename)
        request.state.upload = {"file": name, "source": kind.name, "force": force, "synthetic": synthetic}
        report, size = await run_in_threadpool(_load, engine, file, name, kind.name, force, synthetic)
    finally:
        await form.close()
    grant.returned(report.accepted)
    body = _summary(report, size)
    # The batch is complete and readable now; folding it into the totals runs after the response.
    fold = BackgroundTask(fold_recent, engine) if report.status == "loaded" else None
    return JSONResponse(body, status_code=201 if report.status == "loaded" else 200, background=fold)
