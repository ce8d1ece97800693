"""Export products from a layer query: what the HTTP routes and ``harmmap export`` both call.

Each product reports its steps to a progress callback, so the CLI can show how far a long export is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Connection

from exports import maps, tables
from geo.areas import force_names
from geo.frames import area_frame, force_context
from harm_index.maplayers import LayerQuery, LayerValues, compare, layer_values
from harm_index.periods import Period

Progress = Callable[[str], None]
PRODUCTS = ("map", "multiples", "ranking")
# Outline simplification for an A4 page: a 300 dpi pixel covers about 50 m of a force's width.
PRINT_TOLERANCE_M = 10.0


def _quiet(_step: str) -> None:
    return None


def file_name(query: LayerQuery, product: str, fmt: str) -> str:
    """A download name that says what is in the file."""
    group = f"-{query.group.lower()}" if query.layer in ("ethnic_share", "stop_search") else ""
    period = f"{query.period.start:%Y%m}-{query.period.end:%Y%m}"
    return f"harmmap-{product}-{query.layer}{group}-{query.force_code}-{query.level}-{period}.{fmt}"


def page_for(conn: Connection, values: LayerValues, progress: Progress = _quiet) -> maps.Page:
    """The outlines and context a page of ``values`` is drawn on."""
    progress("reading outlines")
    codes = [a.code for a in values.areas]
    return maps.Page(
        place=_place(conn, values),
        outlines=area_frame(conn, values.level, codes, PRINT_TOLERANCE_M),
        context=force_context(conn, values.force_code, PRINT_TOLERANCE_M),
    )


def print_product(
    conn: Connection,
    query: LayerQuery,
    product: str,
    fmt: str,
    *,
    compare_with: Period | None = None,
    top: int = 20,
    progress: Progress = _quiet,
) -> tuple[bytes, LayerValues]:
    """A map, small multiples or ranked chart as PNG or PDF bytes, and the values drawn."""
    maps.check_format(fmt)
    progress("computing the layer")
    if product == "multiples":
        before, after = compare(conn, replace(query, period=compare_with or query.baseline), query)
        page = page_for(conn, after, progress)
        progress("drawing")
        return maps.small_multiples(before, after, page, fmt), after
    values = layer_values(conn, query)
    if product == "ranking":
        progress("drawing")
        return maps.ranking(values, _place(conn, values), top, fmt), values
    page = page_for(conn, values, progress)
    progress("drawing")
    return maps.choropleth(values, page, fmt), values


def table_product(
    conn: Connection, query: LayerQuery, fmt: str, progress: Progress = _quiet
) -> tuple[Iterator[bytes] | Path, LayerValues]:
    """A download: CSV and GeoJSON as chunks to stream; XLSX and GeoPackage as a temporary file."""
    tables.check_table_format(fmt)
    progress("computing the layer")
    values = layer_values(conn, query)
    if fmt == "csv":
        return tables.csv_chunks(values), values
    if fmt == "xlsx":
        progress("writing the workbook")
        return tables.write_xlsx(values, tables.temporary_path(".xlsx")), values
    outlines = page_for(conn, values, progress).outlines
    if fmt == "geojson":
        return tables.geojson_chunks(values, outlines), values
    progress("writing the GeoPackage")
    return tables.write_gpkg(values, outlines, tables.temporary_path(".gpkg")), values


def _place(conn: Connection, values: LayerValues) -> str:
    return force_names(conn).get(values.force_code, values.force_code)
