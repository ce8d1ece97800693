"""The disparity layer commands: disparity, exposure, demand, trauma, hotspots.

Each prints a short table and, with ``--out``, writes the whole result (every area and group, intervals,
withheld markers, caveats and method) as JSON. Disclosure control is on unless ``--no-disclosure`` is
given, which is for an analyst working on their own force's data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from harmmap import db
from harmmap.cli_common import fail, force_code, resolve_period, settings_or_exit
from harmmap.errors import HarmmapError

ForceOption = Annotated[str, typer.Option("--force", help="GSS code of the force, e.g. E23000030.")]
FromOption = Annotated[str | None, typer.Option("--from", help="First month, YYYY-MM (default: baseline).")]
ToOption = Annotated[str | None, typer.Option("--to", help="Last month, YYYY-MM (default: baseline).")]
PeriodOption = Annotated[
    str | None, typer.Option(help="Instead of --from/--to: FY2019/20, 2019, baseline, pre-covid, covid...")
]
OutOption = Annotated[Path | None, typer.Option(help="Write the full result to this JSON file.")]
SchemeOption = Annotated[str, typer.Option(help="Weight scheme name.")]
DisclosureOption = Annotated[
    bool, typer.Option("--disclosure/--no-disclosure", help="Withhold counts of 1 to the threshold.")
]


def _json_default(value: object) -> object:
    if isinstance(value, dt.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _write(out: Path | None, result: object) -> None:
    if out is None:
        return
    payload = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result  # type: ignore[arg-type]
    out.write_text(json.dumps(payload, default=_json_default, indent=1) + "\n")
    typer.echo(f"wrote {out}")


def _table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[object]], notes: Iterable[str]
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in {"code", "name", "group", "class"} else "right")
    for row in rows:
        table.add_row(*("-" if v is None else f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row))
    console = Console(width=max(Console().width, 160))
    console.print(table)
    for note in notes:
        console.print(f"* {note}", highlight=False)


def _run(compute: Callable[[Any], Any]) -> Any:
    settings = settings_or_exit()
    engine = db.create_db_engine(settings)
    try:
        with engine.connect() as conn:
            return compute(conn)
    except HarmmapError as exc:
        raise fail(exc) from None
    finally:
        engine.dispose()


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _interval(values: Sequence[float] | None) -> str:
    return "-" if not values or values[0] is None else f"{values[0]:,.2f} - {values[1]:,.2f}"


def disparity(
    force: ForceOption,
    level: Annotated[str, typer.Option(help="force, local_authority or ward.")] = "force",
    start: FromOption = None,
    end: ToOption = None,
    period: PeriodOption = None,
    ethnicity: Annotated[str, typer.Option(help="self (Home Office method) or officer.")] = "self",
    legislation: Annotated[
        list[str] | None, typer.Option(help="Only these legislation groups (repeatable), e.g. 's60 CJPOA'.")
    ] = None,
    disclosure: DisclosureOption = True,
    out: OutOption = None,
) -> None:
    """Stop-and-search rates per 1,000 by ethnic group and ratios against White, with 95% intervals."""
    from harm_index.disclosure import Disclosure
    from harm_index.disparity import stop_search_disparity

    settings = settings_or_exit()
    code = force_code(force)
    chosen = resolve_period(settings, start, end, period)
    result = _run(
        lambda conn: stop_search_disparity(
            conn,
            level=level,
            force_code=code,
            period=chosen,
            basis=ethnicity,
            legislation=legislation,
            disclosure=Disclosure(settings.disclosure_threshold, active=disclosure),
        )
    )
    _table(
        f"Stop and search by {ethnicity}-defined ethnicity, {level} in {code}, {chosen.label}",
        ["code", "name", "group", "searches", "rate / 1,000", "95% interval", "ratio vs White", "95% CI"],
        (
            [
                r["code"],
                r["name"],
                r["group"],
                r["searches"],
                r["rate"],
                _interval(r["rate_interval"]),
                r.get("ratio"),
                _interval(r.get("ratio_interval")),
            ]
            for r in result.rates[:60]
        ),
        [
            *(
                f"{u['name'] or u['code']}: {u['not_stated']} not stated, {u['vehicle_only']} vehicle-only "
                f"searches; Black/White ratio {_number(u['black_white_ratio'])}, between "
                f"{_number(u['black_white_ratio_if_not_stated_all_white'])} and "
                f"{_number(u['black_white_ratio_if_not_stated_all_black'])} if the not-stated were all "
                "White or all Black"
                for u in result.unassigned[:5]
            ),
            *result.caveats,
        ],
    )
    _write(out, result)


def exposure(
    force: ForceOption,
    level: Annotated[str, typer.Option(help="force, local_authority or ward.")] = "force",
    start: FromOption = None,
    end: ToOption = None,
    period: PeriodOption = None,
    scheme: SchemeOption = "ons-css",
    out: OutOption = None,
) -> None:
    """Area-level harm exposure of each ethnic group's residents, and the Black/White exposure ratio."""
    from harm_index.exposure import harm_exposure
    from harm_index.weights import load_scheme

    settings = settings_or_exit()
    code = force_code(force)
    chosen = resolve_period(settings, start, end, period)
    result = _run(
        lambda conn: harm_exposure(
            conn, level=level, force_code=code, period=chosen, scheme=load_scheme(conn, scheme)
        )
    )
    _table(
        f"Harm exposure (harm per 1,000 where each group lives), {level} in {code}, {chosen.label}",
        ["code", "name", "LSOAs", "Black", "White", "Asian", "B/W ratio", "95% bootstrap"],
        (
            [
                a["code"],
                a["name"],
                a["lsoas"],
                a["exposure"]["Black"],
                a["exposure"]["White"],
                a["exposure"]["Asian"],
                a.get("ratio"),
                _interval(a.get("ratio_interval")),
            ]
            for a in result.areas[:60]
        ),
        result.caveats,
    )
    _write(out, result)


def demand(
    force: ForceOption,
    level: Annotated[str, typer.Option(help="force, local_authority, ward or lsoa21.")] = "ward",
    start: FromOption = None,
    end: ToOption = None,
    period: PeriodOption = None,
    min_calls: Annotated[int | None, typer.Option(help="Persistent: at least this many calls...")] = None,
    window_days: Annotated[int | None, typer.Option(help="...within this many days.")] = None,
    disclosure: DisclosureOption = True,
    out: OutOption = None,
) -> None:
    """Calls for service per 1,000 residents by closing-code group, with and without persistent callers."""
    from harm_index.demand import PersistentRule, call_demand
    from harm_index.disclosure import Disclosure

    settings = settings_or_exit()
    code = force_code(force)
    chosen = resolve_period(settings, start, end, period)
    rule = PersistentRule(
        min_calls or settings.persistent_min_calls, window_days or settings.persistent_window_days
    )
    result = _run(
        lambda conn: call_demand(
            conn,
            level=level,
            force_code=code,
            period=chosen,
            rule=rule,
            disclosure=Disclosure(settings.disclosure_threshold, active=disclosure),
        )
    )
    marker = " [SYNTHETIC DATA]" if result.synthetic else ""
    _table(
        f"Calls for service, {level} in {code}, {chosen.label}{marker}",
        ["code", "name", "calls", "per 1,000", "without persistent", "per 1,000 (without)"],
        (
            [
                a["code"],
                a["name"],
                g["calls"],
                g["rate"],
                g["calls_without_persistent"],
                g["rate_without_persistent"],
            ]
            for a in result.areas[:60]
            for g in a["groups"]
            if g["group"] == "all"
        ),
        [
            f"{result.persistent_callers} persistent callers ({result.rule}) made "
            f"{result.persistent_calls:,} of {result.calls:,} calls",
            *result.caveats,
        ],
    )
    _write(out, result)


def trauma(
    force: ForceOption,
    level: Annotated[str, typer.Option(help="lsoa21 or ward.")] = "ward",
    start: FromOption = None,
    end: ToOption = None,
    period: PeriodOption = None,
    scheme: SchemeOption = "ons-css",
    weights: Annotated[
        str | None,
        typer.Option(help="Domain weights, e.g. harm=0.4,calls=0.2,police_powers=0.2,deprivation=0.2"),
    ] = None,
    out: OutOption = None,
) -> None:
    """Community trauma score: harm, calls, police powers and deprivation (IMD without crime), IMD method."""
    from harm_index.demand import PersistentRule
    from harm_index.trauma import TraumaConfig, trauma_scores
    from harm_index.weights import load_scheme
    from harmmap.errors import InvalidParameterError

    settings = settings_or_exit()
    code = force_code(force)
    chosen = resolve_period(settings, start, end, period)
    chosen_weights = dict(settings.trauma_weights)
    if weights:
        try:
            chosen_weights = {k.strip(): float(v) for k, v in (p.split("=") for p in weights.split(","))}
        except ValueError:
            raise fail(
                InvalidParameterError("--weights", f"--weights {weights!r} is not name=number,...")
            ) from None
    try:
        config = TraumaConfig(chosen_weights)
    except HarmmapError as exc:
        raise fail(exc) from None
    rule = PersistentRule(settings.persistent_min_calls, settings.persistent_window_days)
    result = _run(
        lambda conn: trauma_scores(
            conn,
            level=level,
            force_code=code,
            period=chosen,
            scheme=load_scheme(conn, scheme),
            config=config,
            rule=rule,
        )
    )
    ranked = sorted((a for a in result.areas if a.get("score") is not None), key=lambda a: a["rank"])
    used = list(result.weights)
    _table(
        f"Community trauma score ({result.config_version}), {level} in {code}, {chosen.label}",
        ["code", "name", "score", "rank", "decile", *used],
        (
            [
                a["code"],
                a["name"],
                a["score"],
                a["rank"],
                a["decile"],
                *(a["domains"][d]["contribution"] for d in used),
            ]
            for a in ranked[:40]
        ),
        [
            f"weights: {', '.join(f'{d} {w:.3f}' for d, w in result.weights.items())}",
            "sensitivity (each weight -/+20%): min Spearman "
            f"{result.sensitivity.get('min_spearman', 1):.3f}, at most "
            f"{100 * result.sensitivity.get('max_share_changing_decile', 0):.1f}% change decile",
            *result.caveats,
        ],
    )
    _write(out, result)


def hotspots(
    force: ForceOption,
    level: Annotated[str, typer.Option(help="ward, lsoa21, h3_7, h3_8 or h3_9.")] = "ward",
    start: FromOption = None,
    end: ToOption = None,
    period: PeriodOption = None,
    scheme: SchemeOption = "ons-css",
    permutations: Annotated[int, typer.Option(help="Conditional permutations for p-values.")] = 999,
    out: OutOption = None,
) -> None:
    """Getis-Ord Gi* hot and cold spots and local Moran's I clusters of harm, FDR-corrected."""
    from harm_index.hotspots import hotspots as find_hotspots
    from harm_index.weights import load_scheme

    settings = settings_or_exit()
    code = force_code(force)
    chosen = resolve_period(settings, start, end, period)
    result = _run(
        lambda conn: find_hotspots(
            conn,
            level=level,
            force_code=code,
            period=chosen,
            scheme=load_scheme(conn, scheme),
            permutations=permutations,
        )
    )
    tested = sorted((a for a in result.areas if a["tested"]), key=lambda a: -a["gi_z"])
    _table(
        f"Hot spots of {result.variable}, {level} in {code}, {chosen.label}",
        ["code", "value", "Gi* z", "p", "class", "Moran class"],
        ([a["code"], a["value"], a["gi_z"], a["gi_p"], a["gi_class"], a["moran_class"]] for a in tested[:40]),
        [
            f"{sum(a['gi_class'] == 'hot spot' for a in tested)} hot and "
            f"{sum(a['gi_class'] == 'cold spot' for a in tested)} cold spots of {len(tested)} tested "
            f"(FDR threshold p <= {result.fdr_threshold_gi}); "
            f"{sum(not a['tested'] for a in result.areas)} not tested",
            *result.caveats,
        ],
    )
    _write(out, result)


def register(cli: typer.Typer) -> None:
    """Add the layer commands to the ``harmmap`` command."""
    cli.command("disparity")(disparity)
    cli.command("exposure")(exposure)
    cli.command("demand")(demand)
    cli.command("trauma")(trauma)
    cli.command("hotspots")(hotspots)
