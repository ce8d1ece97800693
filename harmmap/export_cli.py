"""``harmmap export``: the workshop products on the command line, with a progress bar.

``export map | multiples | ranking`` write PNG or PDF (A4 landscape, 300 dpi); ``export table`` writes
CSV, XLSX, GeoPackage or GeoJSON. They take the same layer parameters as ``/map/layers/{layer}`` and
``/exports/...``, and write the same files.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from harmmap.cli_common import command_engine, force_code, resolve_period, settings_or_exit

export_cli = typer.Typer(
    help="Print-ready maps and charts, and data downloads, for workshops.", no_args_is_help=True
)

ForceOption = Annotated[str, typer.Option("--force", help="GSS code of the force, e.g. E23000030.")]
LayerOption = Annotated[
    str,
    typer.Option(
        help="harm_rate, change, trauma, deprivation, ethnic_share, stop_search, calls or hotspots."
    ),
]
LevelOption = Annotated[str, typer.Option(help="ward, lsoa21, local_authority or h3_7..h3_9 (per layer).")]
FromOption = Annotated[str | None, typer.Option("--from", help="First month, YYYY-MM (default: baseline).")]
ToOption = Annotated[str | None, typer.Option("--to", help="Last month, YYYY-MM (default: baseline).")]
PeriodOption = Annotated[str | None, typer.Option(help="Instead of --from/--to: FY2019/20, 2019, covid...")]
GroupOption = Annotated[str, typer.Option(help="Broad ethnic group for ethnic_share and stop_search.")]
ClassesOption = Annotated[str, typer.Option(help="quantiles or natural_breaks.")]
KOption = Annotated[int, typer.Option("--k", help="Number of classes, 3 to 7.")]
OutOption = Annotated[Path, typer.Option(help="The file to write; its suffix picks the format.")]
DisclosureOption = Annotated[
    bool, typer.Option("--disclosure/--no-disclosure", help="Withhold counts of 1 to the threshold.")
]


def _export(
    product: str,
    *,
    force: str,
    layer: str,
    level: str,
    start: str | None,
    end: str | None,
    period: str | None,
    group: str,
    classes: str,
    k: int,
    out: Path,
    disclosure: bool,
    compare: str | None = None,
    top: int = 20,
) -> None:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from exports import products
    from harm_index.demand import PersistentRule
    from harm_index.disclosure import Disclosure
    from harm_index.maplayers import LayerQuery
    from harm_index.periods import configured_periods, parse_period
    from harm_index.trauma import TraumaConfig
    from harm_index.weights import load_scheme

    settings = settings_or_exit()
    code = force_code(force)
    fmt = out.suffix.lstrip(".").lower()
    chosen = resolve_period(settings, start, end, period)
    named = configured_periods(settings)
    with command_engine(settings) as engine:
        with (
            engine.connect() as conn,
            Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as bar,
        ):
            task = bar.add_task(f"{product} of {layer}", total=None)

            def progress(step: str) -> None:
                bar.update(task, description=f"{product} of {layer}: {step}")

            query = LayerQuery(
                layer=layer,
                force_code=code,
                level=level,
                period=chosen,
                baseline=named.baseline,
                scheme=load_scheme(conn, "ons-css"),
                disclosure=Disclosure(settings.disclosure_threshold, active=disclosure),
                trauma=TraumaConfig(settings.trauma_weights),
                rule=PersistentRule(settings.persistent_min_calls, settings.persistent_window_days),
                group=group,
                method=classes,
                k=k,
            )
            if product == "table":
                made, values = products.table_product(conn, query, fmt, progress)
                progress(f"writing {out.name}")
                _save(made, out)
            else:
                body, values = products.print_product(
                    conn,
                    query,
                    product,
                    fmt,
                    compare_with=parse_period(compare, named, "--compare") if compare else None,
                    top=top,
                    progress=progress,
                )
                progress(f"writing {out.name}")
                out.write_bytes(body)
            bar.update(task, description=f"{product} of {layer}: done")
    marking = " (OFFICIAL-SENSITIVE: handle accordingly)" if values.restricted else ""
    typer.echo(f"wrote {out}: {len(values.areas)} areas, {values.title}, {values.period.label}{marking}")


def _save(made: Iterator[bytes] | Path, out: Path) -> None:
    from exports.tables import discard

    if isinstance(made, Path):
        shutil.copyfile(made, out)
        discard(made)
        return
    with out.open("wb") as handle:
        for chunk in made:
            handle.write(chunk)


@export_cli.command("map")
def export_map(
    force: ForceOption,
    out: OutOption,
    layer: LayerOption = "harm_rate",
    level: LevelOption = "ward",
    start: FromOption = None,
    end: ToOption = None,
    period: PeriodOption = None,
    group: GroupOption = "Black",
    classes: ClassesOption = "quantiles",
    k: KOption = 5,
    disclosure: DisclosureOption = True,
) -> None:
    """A classed choropleth of one layer: A4 landscape, 300 dpi, PNG or PDF (from --out's suffix)."""
    _export(
        "map",
        force=force,
        layer=layer,
        level=level,
        start=start,
        end=end,
        period=period,
        group=group,
        classes=classes,
        k=k,
        out=out,
        disclosure=disclosure,
    )


@export_cli.command("multiples")
def export_multiples(
    force: ForceOption,
    out: OutOption,
    layer: LayerOption = "harm_rate",
    level: LevelOption = "ward",
    start: FromOption = None,
    end: ToOption = None,
    period: PeriodOption = None,
    compare: Annotated[str | None, typer.Option(help="The period to compare (default: baseline).")] = None,
    group: GroupOption = "Black",
    classes: ClassesOption = "quantiles",
    k: KOption = 5,
    disclosure: DisclosureOption = True,
) -> None:
    """Two maps side by side, a comparison period (default: baseline) and the period, on shared classes."""
    _export(
        "multiples",
        force=force,
        layer=layer,
        level=level,
        start=start,
        end=end,
        period=period,
        group=group,
        classes=classes,
        k=k,
        out=out,
        disclosure=disclosure,
        compare=compare,
    )


@export_cli.command("ranking")
def export_ranking(
    force: ForceOption,
    out: OutOption,
    layer: LayerOption = "harm_rate",
    level: LevelOption = "ward",
    start: FromOption = None,
    end: ToOption = None,
    period: PeriodOption = None,
    top: Annotated[int, typer.Option(help="How many areas, 3 to 60.")] = 20,
    group: GroupOption = "Black",
    disclosure: DisclosureOption = True,
) -> None:
    """The highest areas as a ranked bar chart with 95% interval whiskers."""
    _export(
        "ranking",
        force=force,
        layer=layer,
        level=level,
        start=start,
        end=end,
        period=period,
        group=group,
        classes="quantiles",
        k=5,
        out=out,
        disclosure=disclosure,
        top=top,
    )


@export_cli.command("table")
def export_table(
    force: ForceOption,
    out: OutOption,
    layer: LayerOption = "harm_rate",
    level: LevelOption = "ward",
    start: FromOption = None,
    end: ToOption = None,
    period: PeriodOption = None,
    group: GroupOption = "Black",
    classes: ClassesOption = "quantiles",
    k: KOption = 5,
    disclosure: DisclosureOption = True,
) -> None:
    """A layer's values as CSV, XLSX (with a notes sheet), GeoPackage or GeoJSON (from --out's suffix)."""
    _export(
        "table",
        force=force,
        layer=layer,
        level=level,
        start=start,
        end=end,
        period=period,
        group=group,
        classes=classes,
        k=k,
        out=out,
        disclosure=disclosure,
    )
