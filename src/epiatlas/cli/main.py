"""The `epiatlas` command: generate the demo, run the pipeline, publish, query, document contracts."""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import click
import duckdb
import typer
from typer.core import TyperGroup

from epiatlas.errors import EpiatlasError, from_os_error, os_error_in

if TYPE_CHECKING:
    from epiatlas.warehouse import PublishedCatalog


def _fail(exc: EpiatlasError) -> NoReturn:
    """Print the error, whose last line names the file, the rule and what to do, and exit 2 (no traceback)."""
    typer.secho(f"error ({type(exc).__name__}): {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


class _Commands(TyperGroup):
    """Every command's epiatlas and operating-system errors end the CLI with one message and exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except EpiatlasError as exc:
            _fail(exc)
        except OSError as exc:
            _fail(from_os_error(exc, f"epiatlas {ctx.invoked_subcommand}"))
        except duckdb.IOException as exc:  # DuckDB's own file errors (a full disk while writing the catalog)
            reported = os_error_in(str(exc)) or OSError(errno.EIO, " ".join(str(exc).split()))
            _fail(from_os_error(reported, f"epiatlas {ctx.invoked_subcommand}"))


app = typer.Typer(help="epiatlas: explain why hospitalization burden differs between regions.", no_args_is_help=True,
                  cls=_Commands)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="epiatlas YAML config file")]


@app.command()
def run(config: ConfigOption, in_process: bool = typer.Option(False, help="single process (debugging)")) -> None:
    """Materialize every asset for CONFIG through Dagster and publish the catalog."""
    from orchestration.runner import run_pipeline  # Dagster lives in orchestration/, loaded only here

    try:
        summary, published = run_pipeline(config, in_process=in_process, progress=typer.echo)
    except EpiatlasError as exc:
        _fail(exc)
        return
    failed = summary.failed_checks
    typer.echo(f"{summary.job}: run {summary.run_id} succeeded; {len(summary.checks)} checks, {len(failed)} failed")
    for name in failed:
        typer.secho(f"  check failed: {name}", fg=typer.colors.YELLOW)
    _report_published(published)
    typer.echo(f"time per asset group (wall: first step start to last step end; step-sum: the steps' durations "
               f"added up):\n{summary.times.table()}")


def _report_published(published: PublishedCatalog) -> None:
    """What the catalog now holds: tables with row counts, templates still waiting for their tables."""
    typer.echo(f"published {len(published.tables)} tables to {published.path} at {published.info['published_at']}")
    for table, rows in sorted(published.rows.items()):
        typer.echo(f"  {table}: {rows} rows")
    if published.skipped:
        typer.echo(f"  not yet available (their tables are not stored): {', '.join(published.skipped)}")
    if published.info.get("partial") == "true":
        typer.secho(f"PARTIAL catalog: left out {published.info['left_out'] or 'nothing'}; failed: "
                    f"{published.info['failed']}", fg=typer.colors.YELLOW)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_data"), help="folder for the generated files and config"),
    small: bool = typer.Option(False, help="a small data set (seconds) instead of the full demo"),
    run_pipeline: bool = typer.Option(True, "--run/--no-run", help="run the pipeline on it afterwards"),
) -> None:
    """Generate the SYNTHETIC demo data set and its config, then run the pipeline on it."""
    from epiatlas.demo import DemoSpec, generate_demo

    typer.echo(f"generating the {'small' if small else 'full'} SYNTHETIC demo in {out}")
    config_path = generate_demo(out, DemoSpec.small() if small else DemoSpec(), progress=_print_stage)
    typer.echo(f"SYNTHETIC demo data written to {out} (config: {config_path})")
    if run_pipeline:
        run(config_path, in_process=False)
        _print_next_steps(config_path)


def _print_stage(stage: str, seconds: float) -> None:
    """One line per finished demo generation stage, with the seconds since generation started."""
    typer.echo(f"  {seconds:6.1f} s  {stage}")


def _print_next_steps(config_path: Path) -> None:
    """Where the latest period's national report is (HTML, and PDF when written), how to browse and to query."""
    from epiatlas.config import load_config
    from epiatlas.publish import warehouse_for

    cfg = load_config(config_path)
    folder = warehouse_for(cfg).root / "artifacts" / f"report_national_{cfg.periods.end}"
    reports = sorted(folder.glob("*.html")) + sorted(folder.glob("*.pdf"))
    typer.echo(f"national report {cfg.periods.end} (per-{cfg.reports.level} reports beside it, listed in the "
               f"`reports` table):")
    for path in reports or [f"none under {folder}; write it with `epiatlas report --config {config_path} "
                            f"--region national --period {cfg.periods.end}`"]:
        typer.echo(f"  {path}")
    typer.echo(
        f"browse the runs, assets and checks: `make ui`, then open http://localhost:3000\n"
        f"query the catalog: .venv/bin/epiatlas query --config {config_path} "
        f"-f sql/queries/04_highest_standardised_ratios.sql"
    )


@app.command()
def publish(
    config: ConfigOption,
    partial: bool = typer.Option(False, "--partial", help="after a failed run: publish the outcomes and the analyses "
                                 "that succeeded; catalog_info names what failed and the tables left out"),
) -> None:
    """Rebuild and swap in the analyst catalog from the tables of the last run (only what it wrote with --partial)."""
    from epiatlas.config import load_config
    from epiatlas.publish import publish_last_run, warehouse_for
    from epiatlas.warehouse_lock import WarehouseLock

    try:
        cfg = load_config(config)
        with WarehouseLock(warehouse_for(cfg).root):
            published = publish_last_run(cfg, partial)
    except EpiatlasError as exc:
        _fail(exc)
        return
    _report_published(published)


@app.command()
def query(
    config: ConfigOption,
    sql: str = typer.Argument(None, help="SQL over the published catalog"),
    file: Path = typer.Option(None, "--file", "-f", help="read the SQL from this file instead"),
) -> None:
    """Run read-only SQL (argument or --file) against the published catalog and print the result."""
    import duckdb

    from epiatlas.config import load_config
    from epiatlas.publish import warehouse_for

    if (sql is None) == (file is None):
        raise typer.BadParameter("give the SQL either as an argument or with --file")
    text = file.read_text(encoding="utf-8") if file else sql
    try:
        with warehouse_for(load_config(config)).read_catalog() as con:
            typer.echo(con.sql(text).df().to_string(index=False))
    except EpiatlasError as exc:
        _fail(exc)
    except duckdb.PermissionException as exc:
        _fail(EpiatlasError(f"query {'in ' + str(file) + ' ' if file else ''}refused: {exc}; the catalog connection "
                            "reads only the published tables (no files, other databases, extensions or settings)"))
    except duckdb.Error as exc:
        _fail(EpiatlasError(f"query {'in ' + str(file) + ' ' if file else ''}failed: {exc}"))


@app.command()
def report(
    config: ConfigOption,
    region: str = typer.Option(..., "--region", help="region_id (parent_id at reports.level parent), or 'national'"),
    period: int = typer.Option(..., "--period", help="period (year) of the report"),
    pdf: bool | None = typer.Option(None, "--pdf/--no-pdf", help="also print it to PDF in headless Chromium "
                                    "(default: reports.pdf)"),
) -> None:
    """Write one report (HTML, and its PDF) from the published catalog as public warehouse artifacts; print the paths."""
    from epiatlas.artifacts import ArtifactStore
    from epiatlas.config import load_config
    from epiatlas.publish import warehouse_for
    from epiatlas.reports.inputs import read_catalog_data
    from epiatlas.reports.output import write_report

    try:
        cfg = load_config(config)
        warehouse = warehouse_for(cfg)
        with warehouse.read_catalog() as con:
            data = read_catalog_data(con)
        stored = write_report(data, region, period, cfg.reports.level, ArtifactStore(warehouse.root / "artifacts"),
                              pdf=cfg.reports.pdf if pdf is None else pdf)
    except EpiatlasError as exc:
        _fail(exc)
        return
    for problem in stored.problems:
        typer.echo(f"warning: {problem}", err=True)
    if stored.pdf is not None:
        typer.echo(str(stored.pdf.path))
    typer.echo(str(stored.html.path))  # last line: the HTML (tests read it)


@app.command("contracts-docs")
def contracts_docs(out: Path = typer.Option(Path("docs/contracts.md"), help="markdown file to write")) -> None:
    """Write the data-contract reference generated from data_contracts/*.yaml."""
    from epiatlas.contracts import load_contracts, render_markdown

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(load_contracts()), encoding="utf-8")
    typer.echo(f"wrote {out}")


@app.command("check-config")
def check_config(config: ConfigOption) -> None:
    """Check CONFIG and the files it names before any table is touched; list every problem (exit 2) or say OK."""
    from epiatlas.config import load_config
    from epiatlas.preflight import preflight

    from epiatlas.analyses import plan_lines

    cfg = load_config(config)
    result = preflight(cfg)
    for line in [*result.checked, *plan_lines(result.plan)]:
        typer.echo(line)
    result.raise_if_problems(cfg.config_path)
    typer.echo(f"{cfg.config_path}: no problems found; `epiatlas run --config {config}` may start")


if __name__ == "__main__":
    sys.exit(app())
