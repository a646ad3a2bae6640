"""Which analyses a configuration can run, decided from the config and the input files' headers (no row is read).

The asset graph, `check-config`, the run summary and the catalog all read this one plan: an analysis whose inputs
are not configured is off, with the reason, never a failure; what the user asked for explicitly but the inputs
cannot give is a `Problem` naming the config key and the column.

    plan = analysis_plan(cfg)
    plan.indices.on, plan.indicators      # factor indices and the indicator columns they use
    plan.count_models.on, plan.covariate_sources
    plan.severity.on, plan.severity_outcome
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from epiatlas.config import EpiatlasConfig
from epiatlas.contracts import load_contract
from epiatlas.errors import EpiatlasError
from epiatlas.indices.extraction import max_factors
from epiatlas.indices.settings import INDICATOR_CONTRACT, IndicesSettings, builtin_indicators
from epiatlas.models.config import ModelsConfig
from epiatlas.problems import Problem

INDICES, COUNT_MODELS, SEVERITY, IMAGING = "indices", "count_models", "severity", "imaging"
MIN_INDICATORS = 3
POLLUTANT_COVARIATES = ("pm25", "pm10", "o3", "no2", "so2", "co")
INDEX_PREFIX = "index_"


@dataclass(frozen=True)
class Analysis:
    """One optional analysis: whether it runs for this configuration and why (or why not)."""

    name: str
    on: bool
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {'on' if self.on else 'off'} ({self.reason})"


@dataclass(frozen=True)
class AnalysisPlan:
    """The optional analyses of one configuration, what each uses, and the problems of explicit requests."""

    indices: Analysis
    count_models: Analysis
    severity: Analysis
    imaging: Analysis
    indicators: tuple[str, ...]  # indicator columns of the factor analysis (empty when off)
    indicator_tables: tuple[str, ...]  # stored tables holding them
    covariate_sources: tuple[str, ...]  # what the count models' covariates come from, in words
    severity_outcome: str | None  # deaths or severe_cases (None when severity is off)
    problems: tuple[Problem, ...]

    @property
    def analyses(self) -> tuple[Analysis, ...]:
        return self.indices, self.count_models, self.severity, self.imaging

    def lines(self) -> list[str]:
        """One line per analysis: name, on/off and why."""
        return [str(a) for a in self.analyses]

    def summary(self) -> str:
        """All analyses on one line ('indices: on (...); count_models: off (...)'), e.g. for catalog_info."""
        return "; ".join(self.lines())

    def indices_settings(self, settings: IndicesSettings) -> IndicesSettings:
        """The indices settings with the resolved indicator columns."""
        return settings.model_copy(update={"indicators": list(self.indicators)})

    def models_config(self, config: ModelsConfig) -> ModelsConfig:
        """The models settings with severity switched as planned and its outcome resolved."""
        glm = {**config.glm, **({"severity_outcome": self.severity_outcome} if self.severity_outcome else {})}
        return config.model_copy(update={"severity": self.severity.on, "glm": glm})


def mapped_columns(name: str, cfg: EpiatlasConfig) -> set[str] | None:
    """Canonical columns that every file of source `name` maps, from headers and schemas only (None when the source
    cannot be read: preflight reports why)."""
    from epiatlas.ingest.files import source_files
    from epiatlas.ingest.geometry import boundary_fields
    from epiatlas.ingest.tabular import file_columns

    src = getattr(cfg.sources, name)
    wanted = {c.name: src.columns.get(c.name, c.name) for c in load_contract(name).columns if not c.derived}
    con = duckdb.connect()
    try:
        read = (lambda f: boundary_fields(f, src)) if name == "regions" else (lambda f: file_columns(con, f, src))
        found = [set(read(file)) for file in source_files(src.path)]
    except (EpiatlasError, duckdb.Error, OSError):
        return None
    finally:
        con.close()
    present = set.intersection(*found) if found else set()
    return {canonical for canonical, column in wanted.items() if column in present}


def _user_variables(cfg: EpiatlasConfig) -> dict[str, str]:
    """Variable name -> its covariate table (covariates_<name>) for every configured covariate table."""
    from epiatlas.covariates.source import covariate_table

    return {var: covariate_table(name) for name, table in cfg.covariates.items() for var in table.variables}


def _plan_indices(cfg: EpiatlasConfig) -> tuple[Analysis, tuple[str, ...], tuple[str, ...], list[Problem]]:
    """Factor indices: the indicator columns (explicit, else the contract's that the source maps) and their tables."""
    settings = cfg.indices
    if not settings.enabled:
        return Analysis(INDICES, False, "switched off: indices.enabled is false"), (), (), []
    source = cfg.sources.socioeconomic_indicators
    mapped = (mapped_columns(INDICATOR_CONTRACT, cfg) or set()) if source is not None else set()
    builtin = [c for c in builtin_indicators() if c in mapped]
    user = _user_variables(cfg)
    if "indicators" not in settings.model_fields_set:
        if source is None:
            return Analysis(INDICES, False, "no sources.socioeconomic_indicators, and indices.indicators names no "
                                            "covariate columns"), (), (), []
        if len(builtin) < MIN_INDICATORS:
            return Analysis(INDICES, False, f"sources.socioeconomic_indicators maps {len(builtin)} indicator "
                                            f"column(s) {builtin}; factor analysis needs at least {MIN_INDICATORS}"), (), (), []  # fmt: skip
        chosen = builtin
    else:
        chosen = list(settings.indicators)
        unknown = [c for c in chosen if c not in builtin and c not in user]
        if unknown:
            available = builtin + sorted(user)
            problem = Problem("indices.indicators", f"names {unknown}, which neither sources.socioeconomic_"
                                                    f"indicators nor any covariates: table provides (available: "
                                                    f"{available}); remove them, map them under sources."
                                                    f"socioeconomic_indicators.columns, or declare them as covariate "
                                                    f"variables")  # fmt: skip
            return Analysis(INDICES, False, "indices.indicators cannot be met"), (), (), [problem]
    problems = []
    if settings.n_factors != "parallel" and settings.n_factors > max_factors(len(chosen)):
        problems.append(Problem("indices.n_factors", f"{settings.n_factors} factors are not identifiable from "
                                                     f"{len(chosen)} indicators (at most {max_factors(len(chosen))}); "
                                                     f"lower it or use 'parallel'"))  # fmt: skip
    tables = ([INDICATOR_CONTRACT] if set(chosen) & set(builtin) else []) + sorted(
        {user[c] for c in chosen if c in user and c not in builtin}
    )
    origin = "the contract's indicators that sources.socioeconomic_indicators maps" if chosen == builtin else \
        "indices.indicators"
    reason = f"{len(chosen)} indicators ({origin}): {', '.join(chosen)}"
    return Analysis(INDICES, True, reason), tuple(chosen), tuple(tables), problems


def _covariate_problems(cfg: EpiatlasConfig, indices_on: bool) -> list[Problem]:
    """Every explicit models.covariates name must come from an input this config has."""
    pollutants = cfg.sources.pollutant_readings is not None
    user = _user_variables(cfg)
    available = [*(["index_<factor>", "index_composite"] if indices_on else []),
                 *(POLLUTANT_COVARIATES if pollutants else ()), *sorted(user)]  # fmt: skip
    problems = []
    for name in cfg.models.covariates or []:
        if name in user or (pollutants and name in POLLUTANT_COVARIATES) or (indices_on and name.startswith(INDEX_PREFIX)):
            continue
        why = ("an index, but factor indices are off" if name.startswith(INDEX_PREFIX)
               else "a pollutant, but no pollutant sources are configured" if name in POLLUTANT_COVARIATES
               else "not a column of any configured input")  # fmt: skip
        problems.append(Problem("models.covariates", f"{name!s} is {why} (available: {available or 'none'}); remove it "
                                                     f"or configure the input it comes from"))  # fmt: skip
    return problems


def _covariate_sources(cfg: EpiatlasConfig, indices_on: bool) -> list[str]:
    """What the default covariates come from, in words; empty when the count models would have none."""
    imaging = cfg.imaging is not None and cfg.imaging.enabled
    return [
        *(["socioeconomic indices"] if indices_on else []),
        *(["pollutant exposure (pm25)"] if cfg.sources.pollutant_readings is not None else []),
        *(f"covariates.{name} ({', '.join(t.variables)})" for name, t in cfg.covariates.items()),
        *([f"imaging ({', '.join(cfg.models.imaging_covariates)})"] if imaging and cfg.models.imaging_covariates else []),
    ]


def _plan_models(cfg: EpiatlasConfig, indices_on: bool) -> tuple[Analysis, tuple[str, ...], list[Problem]]:
    """Count models: on when some covariate exists (or is named); problems of names and offset that cannot be met."""
    models = cfg.models
    if not models.enabled:
        return Analysis(COUNT_MODELS, False, "switched off: models.enabled is false"), (), []
    problems = _covariate_problems(cfg, indices_on)
    imaging_on = cfg.imaging is not None and cfg.imaging.enabled
    if models.imaging_covariates and not imaging_on:
        problems.append(Problem("models.imaging_covariates", f"{models.imaging_covariates} need the imaging group, "
                                                             f"which is off; enable imaging or set it to []"))
    if models.glm.get("offset") == "population" and cfg.sources.hospitalization_counts is not None:
        if "population" not in (mapped_columns("hospitalization_counts", cfg) or {"population"}):
            problems.append(Problem("models.glm.offset", "is 'population', but sources.hospitalization_counts maps "
                                                         "no population column; map it or use offset: expected"))
    sources = _covariate_sources(cfg, indices_on)
    if models.covariates:
        return Analysis(COUNT_MODELS, True, f"models.covariates: {', '.join(models.covariates)}"), tuple(sources), problems
    if not sources:
        return Analysis(COUNT_MODELS, False, "no covariate: no indicators for factor indices, no pollutant sources, "
                                             "no covariates: tables and no models.imaging_covariates"), (), problems  # fmt: skip
    return Analysis(COUNT_MODELS, True, f"covariates from {'; '.join(sources)}"), tuple(sources), problems


def _plan_severity(cfg: EpiatlasConfig, models_on: bool) -> tuple[Analysis, str | None, list[Problem]]:
    """The severity model: deaths or severe cases out of cases, when the input has them."""
    if not models_on:
        return Analysis(SEVERITY, False, "count models are off"), None, []
    if not cfg.models.severity:
        return Analysis(SEVERITY, False, "switched off: models.severity is false"), None, []
    if cfg.sources.hospitalizations is not None:
        has = {"deaths": True, "severe_cases": True}
        origin = "sources.hospitalizations (discharge status, stay length, ICU)"
    else:
        mapped = mapped_columns("hospitalization_counts", cfg) or set()
        has = {c: c in mapped for c in ("deaths", "severe_cases")}
        origin = "sources.hospitalization_counts"
    asked = cfg.models.glm.get("severity_outcome")
    if asked is not None:
        if not has[asked]:
            problem = Problem("models.glm.severity_outcome", f"is {asked!s}, which {origin} does not provide; map "
                                                             f"that column or set models.severity: false")
            return Analysis(SEVERITY, False, f"{asked} not in the input"), None, [problem]
        return Analysis(SEVERITY, True, f"{asked} out of cases, from {origin}"), asked, []
    outcome = next((c for c in ("deaths", "severe_cases") if has[c]), None)
    if outcome is None:
        return Analysis(SEVERITY, False, f"{origin} has neither deaths nor severe_cases"), None, []
    return Analysis(SEVERITY, True, f"{outcome} out of cases, from {origin}"), outcome, []


def _plan_imaging(cfg: EpiatlasConfig) -> Analysis:
    if cfg.imaging is None:
        return Analysis(IMAGING, False, "no imaging: section (and sources.cxr_manifest)")
    if not cfg.imaging.enabled:
        return Analysis(IMAGING, False, "switched off: imaging.enabled is false")
    return Analysis(IMAGING, True, f"chest X-rays of {cfg.sources.cxr_manifest.path.name}")


def _report_problems(cfg: EpiatlasConfig) -> list[Problem]:
    """Reports per parent region need the parent_id the regions source maps."""
    if cfg.reports.level == "parent" and "parent_id" not in (mapped_columns("regions", cfg) or {"parent_id"}):
        return [Problem("reports.level", "is parent, but sources.regions maps no parent_id, so there would be no "
                                         "parent region to report on (only the national summary); map parent_id "
                                         "(columns: {parent_id: <your column>}) or set reports.level: region")]
    return []


def analysis_plan(cfg: EpiatlasConfig) -> AnalysisPlan:
    """Which optional analyses `cfg` runs, what they use, and the problems of what it asks for explicitly."""
    indices, indicators, tables, problems = _plan_indices(cfg)
    models, sources, model_problems = _plan_models(cfg, indices.on)
    severity, outcome, severity_problems = _plan_severity(cfg, models.on)
    return AnalysisPlan(
        indices=indices, count_models=models, severity=severity, imaging=_plan_imaging(cfg), indicators=indicators,
        indicator_tables=tables, covariate_sources=sources, severity_outcome=outcome,
        problems=tuple([*problems, *model_problems, *severity_problems, *_report_problems(cfg)]),
    )  # fmt: skip


def plan_lines(plan: AnalysisPlan, indent: str = "  ") -> Iterable[str]:
    """'analyses:' and one indented line per analysis, as check-config and `epiatlas run` print them."""
    yield "analyses (on when their inputs are configured):"
    yield from (f"{indent}{line}" for line in plan.lines())
