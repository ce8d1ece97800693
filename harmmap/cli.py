"""The ``harmmap`` command: serve the API, manage the database, load data."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from harmmap import db
from harmmap.cli_common import command_engine, resolve_period
from harmmap.cli_common import fail as _fail
from harmmap.cli_common import force_code as _force_code
from harmmap.cli_common import settings_or_exit as _settings
from harmmap.errors import DatabaseUnavailableError, HarmmapError
from harmmap.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine

    from harm_index.weights import Scheme
    from ingest.batch import Source

cli = typer.Typer(help="harmmap: crime-harm mapping service.", no_args_is_help=True)
db_cli = typer.Typer(help="Create, migrate and inspect the PostGIS store.", no_args_is_help=True)
load_cli = typer.Typer(help="Load reference data into the store.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(load_cli, name="load")
ingest_cli = typer.Typer(
    help="Load record-level and reference data, one batch per file.", no_args_is_help=True
)
cli.add_typer(ingest_cli, name="ingest")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (HARMMAP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (HARMMAP_PORT).")] = None,
) -> None:
    """Run the HTTP API with uvicorn."""
    import uvicorn

    from app.main import create_app
    from harmmap.logs import configure_logging, logging_config

    settings = _settings()
    if host is not None or port is not None:
        settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
    configure_logging(settings)
    # On SIGTERM uvicorn stops accepting, lets requests in flight finish (up to the grace period),
    # then runs the lifespan's shutdown, which disposes of the pool.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=logging_config(settings),
        # harmmap.access logs each request once, with its id; uvicorn's own line would repeat it.
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
    )


@db_cli.command("ping")
def db_ping() -> None:
    """Check that the PostgreSQL server in HARMMAP_DATABASE_URL answers."""
    settings = _settings()
    try:
        version = db.ping_server(settings.db_url, settings.db_connect_timeout_s)
    except DatabaseUnavailableError as exc:
        raise _fail(exc) from None
    typer.echo(version)


@db_cli.command("create")
def db_create() -> None:
    """Create the database in HARMMAP_DATABASE_URL if it does not exist."""
    settings = _settings()
    created = db.ensure_database(settings.db_url)
    typer.echo(f"database {settings.db_url.database} {'created' if created else 'already exists'}")


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    db.upgrade(_settings().db_url, revision)


@db_cli.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or base.")],
) -> None:
    """Revert migrations down to REVISION."""
    db.downgrade(_settings().db_url, revision)


@db_cli.command("current")
def db_current() -> None:
    """Print the database's migration revision and the code's head."""
    settings = _settings()
    with command_engine(settings) as engine:
        with engine.connect() as conn:
            current = db.current_revision(conn)
            postgis = db.postgis_version(conn)
    typer.echo(f"current: {current}\nhead:    {db.migration_head(settings.db_url)}")
    typer.echo(f"postgis: {postgis}")


@db_cli.command("fold")
def db_fold() -> None:
    """Fold recently loaded batches into harm_counts and harm_totals (ingest does this after loading).

    A batch's harm counts are readable from the moment its load commits; folding moves them into the
    long-term tables so queries read one summed row per area, key and period again.
    """
    from rich.console import Console

    with command_engine(_settings()) as engine:
        _fold(engine, Console(stderr=True))


@load_cli.command("boundaries")
def load_boundaries(
    manifest: Annotated[
        Path | None,
        typer.Option(help="Manifest to load (default: HARMMAP_DATA_DIR/boundaries/manifest.toml)."),
    ] = None,
) -> None:
    """Load boundary layers and lookups; a second run with the same files changes nothing."""
    from geo.load import load_boundaries as run

    settings = _settings()
    path = manifest or settings.boundaries_dir / "manifest.toml"
    with command_engine(settings) as engine:
        with engine.begin() as conn:
            report = run(conn, path, progress=lambda msg: typer.echo(f"  {msg} ...", err=True))
    typer.echo(
        f"{'file':<62} {'level/table':<22} {'rows':>6} {'new':>6} {'upd':>5} {'same':>6} "
        f"{'del':>5} {'fixed':>5}"
    )
    for layer in report.layers:
        typer.echo(
            f"{layer.file:<62} {layer.level:<22} {layer.features:>6} {layer.inserted:>6} "
            f"{layer.updated:>5} {layer.unchanged:>6} {layer.deleted:>5} {layer.repaired:>5}"
        )
    for lk in report.lookups:
        extra = f"  ({lk.duplicates_collapsed} duplicate rows collapsed)" if lk.duplicates_collapsed else ""
        typer.echo(
            f"{lk.file:<62} {lk.table:<22} {lk.rows_read:>6} {lk.inserted:>6} {lk.updated:>5} "
            f"{lk.unchanged:>6} {lk.deleted:>5} {'':>5}{extra}"
        )
    typer.echo(f"{report.changed} row(s) changed" if report.changed else "nothing changed")


def _ingest(
    files: list[Path], source: Source, force: str | None = None, synthetic: bool = False, fold: bool = True
) -> None:
    """Load each file as a batch, with a progress bar, then print the summary table."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskID,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.table import Table

    from harmmap.access_cli import audit_command
    from ingest.batch import IngestReport, ingest_file

    settings = _settings()
    engine = db.create_db_engine(settings)
    console = Console(stderr=True)
    reports: list[IngestReport] = []
    failed = False
    try:
        for path in files:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task(path.name, total=None)

                def advance(done: int, total: int, task: TaskID = task) -> None:
                    bar.update(task, completed=done, total=total)

                parameters = {
                    "file": path.name,
                    "source": source.name,
                    "force": force,
                    "synthetic": synthetic,
                }
                try:
                    report = ingest_file(
                        engine, path, source, force_code=force, synthetic=synthetic, progress=advance
                    )
                except HarmmapError as exc:
                    failed = True
                    console.print(f"[red]{path}: refused[/red]\n{exc.detail}")
                    with engine.begin() as conn:
                        audit_command(
                            conn, "ingest", "ingest", parameters, ok=False, rows=0, force_code=force
                        )
                    continue
                reports.append(report)
                with engine.begin() as conn:
                    audit_command(
                        conn,
                        "ingest",
                        "ingest",
                        {**parameters, "batch": report.batch_id, "status": report.status},
                        ok=True,
                        rows=report.accepted,
                        force_code=force,
                    )
        if fold and any(r.status == "loaded" for r in reports):
            _fold(engine, console)
    finally:
        engine.dispose()
    table = Table(title="ingest summary")
    for column in (
        "file",
        "batch",
        "status",
        "data rows",
        "accepted",
        "rejected",
        "rejected by reason",
        "blank lines",
        "seconds",
        "rows/s",
    ):
        table.add_column(
            column, justify="left" if column in {"file", "status", "rejected by reason"} else "right"
        )
    for r in reports:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(r.rejected_by_kind.items())) or "-"
        table.add_row(
            r.file,
            str(r.batch_id),
            r.status,
            f"{r.data_rows:,}",
            f"{r.accepted:,}",
            f"{r.rejected:,}",
            reasons,
            f"{r.blank_lines:,}",
            f"{r.seconds:.2f}",
            f"{r.rows_per_s:,.0f}",
        )
    Console(width=max(Console().width, 150)).print(table)
    for r in reports:
        typer.echo(
            f"{r.file}: accepted {r.accepted:,} + rejected {r.rejected:,} = {r.accepted + r.rejected:,} "
            f"of {r.data_rows:,} data rows"
        )
    if failed:
        raise typer.Exit(1)


def _fold(engine: Engine, console: Console) -> None:
    """Fold the recent batches into the totals, with a progress bar; figures read the same after."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ingest.aggregate import fold_recent

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("folding batches into the harm totals", total=None)
        folded = fold_recent(engine, lambda done, total: bar.update(task, completed=done, total=total))
    done = [f for f in folded if not f.waited_out]
    if done:
        console.print(
            f"folded {len(done)} batch(es), {sum(f.rows for f in done):,} aggregate rows, into the harm "
            f"totals in {sum(f.seconds for f in done):.2f} s"
        )
    if waited := [str(f.batch_id) for f in folded if f.waited_out]:
        console.print(
            f"[yellow]batch(es) {', '.join(waited)} stay recent: a reader held the aggregate too long. "
            "Figures are complete either way; run `harmmap db fold` later.[/yellow]"
        )


FilesArg = Annotated[
    list[Path], typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV files.")
]


FoldOption = Annotated[
    bool,
    typer.Option(
        "--fold/--no-fold",
        help="Fold the new batches into the harm totals after loading (figures are complete either way; "
        "--no-fold leaves it to `harmmap db fold`, e.g. to fold many loads at once).",
    ),
]


@ingest_cli.command("police-uk")
def ingest_police_uk(files: FilesArg, fold: FoldOption = True) -> None:
    """Load police.uk street-level crime CSVs (current or 2011 format)."""
    from ingest.police_uk import PoliceUkStreet

    _ingest(files, PoliceUkStreet(), fold=fold)


@ingest_cli.command("stop-search")
def ingest_stop_search(files: FilesArg) -> None:
    """Load police.uk stop-and-search CSVs."""
    from ingest.stop_search import PoliceUkStopSearch

    _ingest(files, PoliceUkStopSearch())


ForceOption = Annotated[
    str, typer.Option("--force", help="GSS code of the force that supplied the file, e.g. E23000030.")
]


@ingest_cli.command("offences")
def ingest_offences(files: FilesArg, force: ForceOption, fold: FoldOption = True) -> None:
    """Load force-supplied recorded crime (Home Office offence codes); see docs/input-schemas.md."""
    from ingest.offences import ForceOffences

    _ingest(files, ForceOffences(), force=_force_code(force), fold=fold)


@ingest_cli.command("calls")
def ingest_calls(
    files: FilesArg,
    force: Annotated[
        str | None, typer.Option("--force", help="Refuse calls placed in any other force.")
    ] = None,
) -> None:
    """Load calls for service in harmmap's schema (synthetic rows stay marked as synthetic)."""
    from ingest.calls import CallsForService

    _ingest(files, CallsForService(), force=_force_code(force) if force else None)


def _reference_files(directory: Path | None, names: list[str]) -> list[Path]:
    base = directory or _settings().data_dir / "reference_layers"
    return [base / name for name in names]


DirOption = Annotated[
    Path | None, typer.Option("--dir", help="Folder of the files (default: data/reference_layers).")
]


@ingest_cli.command("imd")
def ingest_imd(directory: DirOption = None) -> None:
    """Load IoD 2019 ranks and deciles by LSOA 2011 (domains and sub-domains)."""
    from ingest.reference import ImdRanks, ImdSubdomains

    ranks, subdomains = _reference_files(
        directory,
        [
            "imd2019_lsoa11_ranks_deciles_hampshire_westmidlands.csv",
            "imd2019_lsoa11_subdomains_hampshire_westmidlands.csv",
        ],
    )
    _ingest([ranks], ImdRanks())
    _ingest([subdomains], ImdSubdomains())


@ingest_cli.command("census")
def ingest_census(directory: DirOption = None) -> None:
    """Load Census 2021 ethnicity: broad groups by LSOA 2021, detailed groups by local authority."""
    from ingest.reference import CensusEthnicityLad, CensusEthnicityLsoa

    lsoa, lad = _reference_files(
        directory,
        [
            "ts021_ethnic_group_broad_lsoa21_hampshire_westmidlands.csv",
            "ethnic_group_detailed_lad21_EW_long.csv",
        ],
    )
    _ingest([lsoa], CensusEthnicityLsoa())
    _ingest([lad], CensusEthnicityLad())


generate_cli = typer.Typer(help="Make SYNTHETIC data where no public data exists.", no_args_is_help=True)
cli.add_typer(generate_cli, name="generate")


@generate_cli.command("calls")
def generate_calls_command(
    force: ForceOption,
    months: Annotated[str, typer.Option(help="YYYY-MM..YYYY-MM, inclusive.")] = "2019-01..2019-03",
    seed: Annotated[int, typer.Option(help="Seed for the random generator.")] = 2018,
    out: Annotated[
        Path | None, typer.Option(help="Output CSV (default: calls-SYNTHETIC-<force>-<months>.csv).")
    ] = None,
) -> None:
    """Write SYNTHETIC calls for service for a force, spread by population and recorded crime."""
    from ingest.generate_calls import generate_calls, month_range

    code = _force_code(force)
    start, _, end = months.partition("..")
    settings = _settings()
    with command_engine(settings) as engine:
        span = month_range(start, end or start)
        path = out or Path(f"calls-SYNTHETIC-{code}-{span[0]:%Y%m}-{span[-1]:%Y%m}.csv")
        with engine.connect() as conn:
            rows = generate_calls(conn, code, span, path, seed)
    typer.echo(f"wrote {rows:,} SYNTHETIC calls for {code} to {path}")


@cli.command("quality")
def quality(
    force: ForceOption,
    out: Annotated[Path | None, typer.Option(help="CSV to write (default: quality-<force>.csv).")] = None,
) -> None:
    """RAG-rate the data held for a force (the workshops' data validation exercise): table and CSV."""
    import csv

    from rich.console import Console
    from rich.table import Table

    from ingest.quality import quality_report

    code = _force_code(force)
    with command_engine() as engine:
        with engine.connect() as conn:
            lines = quality_report(conn, code)
    colours = {"Green": "green", "Amber": "yellow", "Red": "red"}
    table = Table(title=f"data quality for {code}")
    for column in ("source", "check", "value", "rating", "detail", "thresholds"):
        table.add_column(column)
    for q in lines:
        value = "-" if q.value is None else f"{q.value:.1%}"
        table.add_row(q.source, q.check, value, f"[{colours[q.rating]}]{q.rating}[/]", q.detail, q.thresholds)
    Console(width=max(Console().width, 180)).print(table)
    path = out or Path(f"quality-{code}.csv")
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["force_code", "source", "check", "value", "rating", "detail", "thresholds"])
        for q in lines:
            writer.writerow(
                [
                    q.force_code,
                    q.source,
                    q.check,
                    "" if q.value is None else round(q.value, 6),
                    q.rating,
                    q.detail,
                    q.thresholds,
                ]
            )
    typer.echo(f"wrote {path}")


weights_cli = typer.Typer(help="Harm weight schemes.", no_args_is_help=True)
cli.add_typer(weights_cli, name="weights")


@weights_cli.command("builtin")
def weights_builtin() -> None:
    """Load the ONS Crime Severity Score scheme shipped in data/harm_weights (idempotent)."""
    from harm_index.weights import shipped_ons_css_scheme

    settings = _settings()
    _store(settings, shipped_ons_css_scheme(settings.data_dir))


@weights_cli.command("load")
def weights_load(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV: offence_code or category, weight.")
    ],
    name: Annotated[str, typer.Option(help="Scheme name, e.g. cambridge-chi.")],
    version: Annotated[str, typer.Option(help="Version of this set of weights, e.g. 2016.")],
    source: Annotated[str, typer.Option(help="Where the weights come from.")] = "user-supplied",
) -> None:
    """Load a user-supplied weight scheme (e.g. a Cambridge Crime Harm Index table)."""
    from harm_index.weights import read_user_scheme

    settings = _settings()
    try:
        scheme = read_user_scheme(file, name, version, source)
    except HarmmapError as exc:
        raise _fail(exc) from None
    _store(settings, scheme)


@weights_cli.command("list")
def weights_list() -> None:
    """List the weight schemes in the store."""
    from sqlalchemy import text

    with command_engine() as engine:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT s.name, s.version, count(w.*) AS n, s.method FROM weight_schemes s "
                    "LEFT JOIN weights w ON w.scheme_id = s.id GROUP BY s.id ORDER BY s.name, s.version"
                )
            ).all()
    for row in rows:
        typer.echo(f"{row.name}  {row.version}  {row.n} weights  ({row.method})")


def _store(settings: Settings, scheme: Scheme) -> None:
    from harm_index.weights import store_scheme

    with command_engine(settings) as engine:
        with engine.begin() as conn:
            _, status = store_scheme(conn, scheme)
    typer.echo(f"{scheme.name} {scheme.version}: {status} ({len(scheme.weights)} weights)")


@cli.command("harm")
def harm(
    force: ForceOption,
    level: Annotated[
        str, typer.Option(help="force, local_authority, ward, lsoa21, lsoa11, h3_7 ... h3_10.")
    ] = "ward",
    start: Annotated[
        str | None, typer.Option("--from", help="First month, YYYY-MM (default: baseline start).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last month, YYYY-MM (default: baseline end).")
    ] = None,
    period: Annotated[
        str | None, typer.Option(help="Instead of --from/--to: FY2019/20, 2019, baseline, covid...")
    ] = None,
    scheme: Annotated[str, typer.Option(help="Weight scheme name.")] = "ons-css",
    source: Annotated[str, typer.Option(help="police_uk_street or force_offences.")] = "police_uk_street",
    against: Annotated[
        str | None, typer.Option(help="Compare with this period, e.g. baseline or pre-covid.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write every area to this CSV.")] = None,
    top: Annotated[int, typer.Option(help="Rows to print (highest harm rate first).")] = 25,
) -> None:
    """Harm per area and period: counts, harm, harm per 1,000 residents, 95% intervals, caveats."""
    import csv

    from rich.console import Console
    from rich.table import Table

    from harm_index.periods import configured_periods, parse_period
    from harm_index.scores import area_harm
    from harm_index.weights import load_scheme

    settings = _settings()
    code = _force_code(force)
    with command_engine(settings) as engine:
        chosen = resolve_period(settings, start, end, period)
        compare = parse_period(against, configured_periods(settings), "--against") if against else None
        with engine.connect() as conn:
            result = area_harm(
                conn,
                level=level,
                force_code=code,
                period=chosen,
                scheme=load_scheme(conn, scheme),
                source=source,
                baseline=compare,
            )
    console = Console(width=max(Console().width, 160))
    table = Table(
        title=f"{result.source} harm, {result.level} in {code}, {result.period.label} "
        f"({result.scheme} {result.scheme_version})"
    )
    for column in (
        "code",
        "name",
        "incidents",
        "harm (days)",
        "harm / 1,000",
        "95% interval",
        "change",
        "sig",
    ):
        table.add_column(column, justify="left" if column in {"code", "name"} else "right")
    ranked = sorted(result.areas, key=lambda a: (a.harm_rate is None, -(a.harm_rate or a.harm)))
    for a in ranked[:top]:
        interval = a.harm_rate_interval or a.harm_interval
        value = a.harm_rate if a.harm_rate is not None else None
        change = f"{a.change.ratio:.2f}x" if a.change and a.change.ratio else "-"
        table.add_row(
            a.code,
            a.name,
            f"{a.incidents:,}",
            f"{a.harm:,.0f}",
            "-" if value is None else f"{value:,.1f}",
            f"{interval[0]:,.1f} - {interval[1]:,.1f}",
            change,
            "yes" if a.change and a.change.significant else "",
        )
    console.print(table)
    for note in [*result.notes, *result.caveats]:
        console.print(f"- {note}")
    for key, info in result.unweighted.items():
        console.print(f"- not weighted: {key}: {info['incidents']:,} incidents ({info['reason']})")
    if out:
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                [
                    "code",
                    "name",
                    "incidents",
                    "incidents_lower",
                    "incidents_upper",
                    "harm",
                    "harm_lower",
                    "harm_upper",
                    "population",
                    "harm_per_1000",
                    "harm_per_1000_lower",
                    "harm_per_1000_upper",
                    "incidents_per_1000",
                    "incidents_per_1000_smoothed",
                    "unweighted_incidents",
                    "change_ratio",
                    "change_lower",
                    "change_upper",
                    "change_significant",
                    "no_rate_reason",
                    "scheme",
                    "scheme_version",
                    "period",
                    "caveats",
                ]
            )
            for a in result.areas:
                rate_interval = a.harm_rate_interval or (None, None)
                ch = a.change
                writer.writerow(
                    [
                        a.code,
                        a.name,
                        a.incidents,
                        *a.incidents_interval,
                        a.harm,
                        *a.harm_interval,
                        a.population,
                        a.harm_rate,
                        *rate_interval,
                        a.incident_rate,
                        a.incident_rate_smoothed,
                        a.unweighted_incidents,
                        ch.ratio if ch else None,
                        ch.lower if ch else None,
                        ch.upper if ch else None,
                        ch.significant if ch else None,
                        a.no_rate_reason,
                        result.scheme,
                        result.scheme_version,
                        result.period.label,
                        " | ".join(result.caveats),
                    ]
                )
        typer.echo(f"wrote {len(result.areas)} areas to {out}")


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cli()
    except DatabaseUnavailableError as exc:
        typer.secho(f"harmmap: {exc.detail}", fg="red", err=True)
        sys.exit(1)


def _register_layers() -> None:
    # Imported here, after ``cli`` exists: the layer commands add themselves to it.
    from harmmap.access_cli import audit_command_line, keys_cli
    from harmmap.export_cli import export_cli
    from harmmap.layers_cli import register

    register(cli)
    cli.add_typer(export_cli, name="export")
    cli.add_typer(keys_cli, name="keys")
    cli.command("audit")(audit_command_line)


_register_layers()

if __name__ == "__main__":
    main()
