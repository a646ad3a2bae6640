"""Checks before any table is touched: inputs readable with the mapped columns, definitions parse, periods fit the
data, and the warehouse is a dedicated, writable folder. `epiatlas check-config` shows them; a run refuses to start
while any problem remains, listing all of them at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
from pyproj import CRS
from pyproj.exceptions import CRSError

from epiatlas.analyses import AnalysisPlan, analysis_plan
from epiatlas.config import EpiatlasConfig, SourceConfig, warehouse_root_problem
from epiatlas.contracts import Contract, load_contract
from epiatlas.covariates.source import covariate_contract, covariate_source_config, covariate_table
from epiatlas.contracts.sql import ident, literal
from epiatlas.errors import EmptySourceError, EpiatlasError, PreflightError
from epiatlas.ingest import source_columns
from epiatlas.ingest.columns import check_config_names, map_columns
from epiatlas.ingest.files import source_files
from epiatlas.ingest.tabular import run_csv, scan_sql
from epiatlas.outcomes.age_groups import lower_bound
from epiatlas.outcomes.case_definitions import parse_case_definition
from epiatlas.problems import Problem

WAREHOUSE_MARKER = ".epiatlas-warehouse"


@dataclass(frozen=True)
class PreflightResult:
    """Every problem found, and a line per source saying what was checked."""

    problems: tuple[Problem, ...]
    checked: tuple[str, ...]
    plan: AnalysisPlan

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_problems(self, config: Path | None) -> None:
        """PreflightError listing every problem, one per line, when there are any."""
        if self.problems:
            where = f"{config}: " if config else ""
            raise PreflightError(f"{where}{len(self.problems)} problem(s) found before any table was touched; "
                                 f"fix them and run again:\n" + "\n".join(map(str, self.problems)))


def _problems_of(where: str, check: Callable[[], object]) -> list[Problem]:
    """[] when `check` passes, else the problem its epiatlas error (or unparsable CRS) describes."""
    try:
        check()
    except (EpiatlasError, CRSError) as exc:
        return [Problem(where, str(exc))]
    return []


def _query(con: duckdb.DuckDBPyConnection, file: Path, cfg: SourceConfig, sql: str) -> duckdb.DuckDBPyConnection:
    """Execute SQL reading one input file; a CSV's reader errors become source errors naming the bad line."""
    return run_csv(con, file, cfg, sql) if cfg.resolved_format == "csv" else con.execute(sql)


def _text_values(con: duckdb.DuckDBPyConnection, files: list[Path], cfg: SourceConfig, column: str,
                 expression: str) -> list[object]:
    """Distinct values of `expression` (over the file column, as `v`) across the files; no rows are kept."""
    col = ident(cfg.columns.get(column, column))
    values: set[object] = set()
    for file in files:
        sql = f"SELECT DISTINCT {expression} FROM (SELECT CAST({col} AS VARCHAR) AS v FROM {scan_sql(file, cfg)})"
        values |= {row[0] for row in _query(con, file, cfg, sql).fetchall()}
    return sorted(v for v in values if v is not None)


def _require_rows(con: duckdb.DuckDBPyConnection, files: list[Path], cfg: SourceConfig) -> None:
    """EmptySourceError unless some file holds a data row (reads one row at most)."""
    for file in files:
        sql = f"SELECT 1 FROM {scan_sql(file, cfg)} LIMIT 1"
        if _query(con, file, cfg, sql).fetchone():
            return
    raise EmptySourceError(f"{', '.join(map(str, files))}: no data rows, only a header (rule: a source needs at "
                           f"least one row); export the data again or point the path at the right file")


def _years_problem(where: str, what: str, years: list[int], periods: list[int]) -> list[Problem]:
    """Every configured period must have data: none at all (wrong periods) or some missing (too wide)."""
    span = f"{years[0]}..{years[-1]}" if years else "none"
    missing = sorted(set(periods) - set(years))
    if not set(years) & set(periods):
        return [Problem(where, f"no {what} falls in periods {periods[0]}..{periods[-1]} (the data has {span}); "
                               f"set periods.start/end to years the data covers")]
    if missing:
        return [Problem(where, f"periods {missing} have no {what} (the data has {span}); narrow periods.start/end "
                               f"to the years the data covers or add the missing data")]
    return []


def _period_problems(con: duckdb.DuckDBPyConnection, name: str, cfg: SourceConfig, files: list[Path],
                     periods: list[int], present: set[str]) -> list[Problem]:
    """Census years, admission dates and count periods (when the file has them) must cover the configured periods."""
    where = f"sources.{name}"
    if name == "census":
        years = _text_values(con, files, cfg, "year", "try_cast(try_cast(v AS DOUBLE) AS INTEGER)")
        return _years_problem(where, "census year", years, periods)
    if name == "hospitalization_counts" and "period" in present:
        years = _text_values(con, files, cfg, "period", "try_cast(try_cast(v AS DOUBLE) AS INTEGER)")
        return _years_problem(where, "count period", years, periods)
    if name == "hospitalization_counts" and len(periods) > 1:
        return [Problem(where, f"the counts have no period column, so they are read as period {periods[-1]} "
                               f"(periods.end) and periods {periods[:-1]} would show zero cases; set periods.start "
                               f"to {periods[-1]}, or map a period column (columns: {{period: <your column>}})")]
    if name == "hospitalizations":
        date = "try_cast(v AS DATE)"
        if cfg.date_format:
            date = f"coalesce(try_strptime(v, {literal(cfg.date_format)})::DATE, {date})"
        years = _text_values(con, files, cfg, "admission_date", f"year({date})")
        return _years_problem(where, "admission date", years, periods)
    return []


def _age_groups(con: duckdb.DuckDBPyConnection, cfg: EpiatlasConfig) -> set[str] | None:
    """Census age-group labels (recoded as ingest would), or None without a readable census."""
    census = cfg.sources.census
    if census is None:
        return None
    try:
        raw = _text_values(con, source_files(census.path), census, "age_group", "trim(v)")
    except (EpiatlasError, duckdb.Error):
        return None  # reported as the census source's own problem
    recode = census.recode.get("age_group", {})
    return {recode.get(v, v) for v in raw}


def _weights_problems(con: duckdb.DuckDBPyConnection, cfg: EpiatlasConfig) -> list[Problem]:
    """Custom reference weights: labels parse, non-negative with a positive sum, the census age groups exactly."""
    ref = cfg.outcomes.reference_population
    where = "outcomes.reference_population.weights"
    if ref.kind != "custom" or not ref.weights:
        return []
    problems = [p for label in ref.weights for p in _problems_of(where, lambda label=label: lower_bound(label))]
    if any(w < 0 for w in ref.weights.values()) or sum(ref.weights.values()) <= 0:
        problems.append(Problem(where, "weights must be >= 0 with a positive sum"))
    groups = _age_groups(con, cfg)
    if groups is not None and set(ref.weights) != groups:
        missing, unknown = sorted(groups - set(ref.weights)), sorted(set(ref.weights) - groups)
        problems.append(Problem(where, f"age groups must match the census exactly: missing {missing}, "
                                       f"unknown {unknown}"))
    return problems


def _source_problems(con: duckdb.DuckDBPyConnection, name: str, cfg: SourceConfig, periods: list[int],
                     contract: Contract, where: str) -> tuple[list[Problem], str]:
    """Files readable, mapped columns in every header, periods covered; plus a line saying what was checked."""
    try:
        check_config_names(name, cfg, contract)
        files = source_files(cfg.path)
        present = {c for file in files for c in map_columns(file, source_columns(con, name, file, cfg), cfg, contract)}
        if name != "regions":
            _require_rows(con, files, cfg)
        problems = _period_problems(con, name, cfg, files, periods, present)
    except (EpiatlasError, duckdb.Error) as exc:
        return [Problem(where, str(exc))], f"{where}: {cfg.path}"
    return problems, f"{where}: {len(files)} file(s), {cfg.resolved_format}, mapped columns present"


def _foreign_entries(root: Path, cfg: EpiatlasConfig) -> list[str]:
    """Names in `root` that no epiatlas run writes (tables, the catalog, lock and temporary files are its own)."""
    catalog = cfg.warehouse.catalog_name
    own = {WAREHOUSE_MARKER, "tables", catalog, f"{catalog}.wal"}
    return sorted(p.name for p in root.iterdir()
                  if p.name not in own and not p.name.startswith(".epiatlas") and not p.name.endswith(".tmp"))


def warehouse_problems(cfg: EpiatlasConfig) -> list[Problem]:
    """A dedicated folder (marked as an epiatlas warehouse once used), writable, with room for the catalog."""
    root = cfg.warehouse.root
    if problem := warehouse_root_problem(cfg):
        return [Problem("warehouse.root", problem + "; set warehouse.root to a folder of its own")]
    if root.exists() and not root.is_dir():
        return [Problem("warehouse.root", f"{root} is a file, not a folder; choose another warehouse.root")]
    if root.is_dir() and not (root / WAREHOUSE_MARKER).exists() and (foreign := _foreign_entries(root, cfg)):
        return [Problem("warehouse.root", f"{root} is a non-empty folder that is not an epiatlas warehouse (no "
                                          f"{WAREHOUSE_MARKER} marker; it holds {foreign[:3]}); choose an empty or "
                                          f"new folder, which epiatlas then marks as its own")]
    existing = next(p for p in (root, *root.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        return [Problem("warehouse.root", f"{existing} is not writable by this user; fix its permissions or choose "
                                          f"another warehouse.root")]
    catalog = root / cfg.warehouse.catalog_name
    if catalog.is_dir():
        return [Problem("warehouse.catalog_name", f"{catalog} is a folder; remove it or choose another catalog_name")]
    return []


def preflight(cfg: EpiatlasConfig) -> PreflightResult:
    """Every check that needs no table: sources, covariate tables, case definition, CRSs, weights, warehouse, and
    what the optional analyses ask of the inputs (`epiatlas.analyses`)."""
    periods = [int(p) for p in cfg.periods.keys]
    problems: list[Problem] = []
    checked: list[str] = []
    con = duckdb.connect()
    try:
        for name, src in cfg.sources.configured().items():
            found, line = _source_problems(con, name, src, periods, load_contract(name), f"sources.{name}")
            problems += found
            checked.append(line)
        for name, cov in cfg.covariates.items():
            try:
                src = covariate_source_config(name, cov)
            except EpiatlasError as exc:
                problems.append(Problem(f"covariates.{name}", str(exc)))
                continue
            found, line = _source_problems(con, covariate_table(name), src, periods, covariate_contract(name, cov),
                                           f"covariates.{name}")
            problems += found
            checked.append(line)
            if src.crs:
                problems += _problems_of(f"sources.{name}.crs", lambda src=src: CRS.from_user_input(src.crs))
        problems += _weights_problems(con, cfg)
    finally:
        con.close()
    problems += _problems_of("outcomes.case_icd10", lambda: parse_case_definition(cfg.outcomes.case_icd10))
    if cfg.exposure.projected_crs:
        problems += _problems_of("exposure.projected_crs", lambda: CRS.from_user_input(cfg.exposure.projected_crs))
    problems += warehouse_problems(cfg)
    checked.append(f"warehouse: {cfg.warehouse.root / cfg.warehouse.catalog_name}")
    plan = analysis_plan(cfg)
    return PreflightResult(tuple(problems + list(plan.problems)), tuple(checked), plan)


def require_preflight(cfg: EpiatlasConfig) -> AnalysisPlan:
    """Raise PreflightError listing every problem; otherwise mark the warehouse folder as epiatlas's own and return
    the analysis plan that was checked."""
    result = preflight(cfg)
    result.raise_if_problems(cfg.config_path)
    cfg.warehouse.root.mkdir(parents=True, exist_ok=True)
    (cfg.warehouse.root / WAREHOUSE_MARKER).touch()
    return result.plan
