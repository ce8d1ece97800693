"""Workshop exports: print-ready maps and charts (PNG, PDF) and data downloads (CSV, XLSX, GPKG, GeoJSON).

The products are made in ``exports``; this module reads the parameters (the same as the map layers')
and sends the result as an attachment. CSV and GeoJSON stream; XLSX and GeoPackage are written to a
temporary file that is streamed and then removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from app.deps import ConnectionDep, GrantDep, SettingsDep
from app.routes.maps import LayerQueryDep
from exports import maps, products, tables
from harm_index.periods import period_or_baseline

router = APIRouter(prefix="/exports", tags=["exports"])
PRINT_TYPES = {"png": "image/png", "pdf": "application/pdf"}
PRODUCT_SUMMARIES = {
    "map": "A print-ready choropleth (A4 landscape, 300 dpi)",
    "multiples": "Small multiples: the layer in a comparison period and in the period, with shared classes",
    "ranking": "The highest areas as a ranked bar chart with 95% interval whiskers",
}


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


def _print_route(product: str) -> None:
    def export(
        fmt: str,
        query: LayerQueryDep,
        conn: ConnectionDep,
        settings: SettingsDep,
        grant: GrantDep,
        compare: Annotated[
            str | None,
            Query(max_length=40, description="multiples: the period to compare (default: baseline)"),
        ] = None,
        top: Annotated[int, Query(ge=3, le=60, description="ranking: how many areas")] = 20,
    ) -> Response:
        maps.check_format(fmt)
        body, values = products.print_product(
            conn,
            query,
            product,
            fmt,
            compare_with=period_or_baseline(settings, compare, "compare") if compare else None,
            top=top,
        )
        grant.returned(len(values.areas))
        headers = _attachment(products.file_name(query, product, fmt))
        if values.restricted:
            headers["X-Protective-Marking"] = maps.MARKING
        return Response(body, media_type=PRINT_TYPES[fmt], headers=headers)

    export.__doc__ = f"{PRODUCT_SUMMARIES[product]}, as PNG or PDF. Takes the map layer parameters."
    router.add_api_route(
        f"/{product}.{{fmt}}",
        export,
        methods=["GET"],
        summary=PRODUCT_SUMMARIES[product],
        response_class=Response,
        responses={200: {"content": {t: {} for t in PRINT_TYPES.values()}}},
        name=f"export_{product}",
    )


for _product in products.PRODUCTS:
    _print_route(_product)


@router.get(
    "/table.{fmt}",
    summary="A layer's values as CSV, XLSX (with notes), GeoPackage or GeoJSON",
    response_class=Response,
    responses={200: {"content": {t: {} for t in tables.TABLE_FORMATS.values()}}},
)
def export_table(fmt: str, query: LayerQueryDep, conn: ConnectionDep, grant: GrantDep) -> Response:
    """Every area's value, interval, class, withheld markers and details, with method notes."""
    tables.check_table_format(fmt)
    made, values = products.table_product(conn, query, fmt)
    grant.returned(len(values.areas))
    headers = _attachment(products.file_name(query, "table", fmt))
    if values.restricted:
        headers["X-Protective-Marking"] = maps.MARKING
    media_type = tables.TABLE_FORMATS[fmt]
    if isinstance(made, Path):
        return FileResponse(
            made, media_type=media_type, headers=headers, background=BackgroundTask(tables.discard, made)
        )
    return StreamingResponse(made, media_type=media_type, headers=headers)
