"""Typed project configuration: one YAML file drives demo and real runs alike.

The file is validated once, here, at the edge; every other module receives these models.
Relative paths in the file are resolved against the directory that holds the file.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from epiatlas.covariates.settings import CovariateName, CovariateTableConfig
from epiatlas.errors import ConfigError
from epiatlas.file_cache import cached_parse
from epiatlas.imaging.config import ImagingConfig
from epiatlas.indices.settings import IndicesSettings
from epiatlas.models.config import ModelsConfig
from epiatlas.reports.config import ReportsConfig
from epiatlas.yaml_files import read_yaml_mapping

FileFormat = Literal["csv", "parquet", "gpkg", "geojson", "shp"]
_SUFFIX_FORMATS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".gpkg": "gpkg",
    ".geojson": "geojson",
    ".json": "geojson",
    ".shp": "shp",
}


class _Strict(BaseModel):
    """Base model that rejects unknown keys so typos in the YAML fail loudly."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where one input lives and how its columns map onto the contract's canonical names."""

    path: Path
    format: FileFormat | None = None
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="canonical column name -> column name in the file; unmapped canonical "
        "columns are looked up under their own name",
    )
    recode: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="canonical column -> {value in file: canonical value}, e.g. sex {H: M, M: F}",
    )
    encoding: str = "utf-8"
    delimiter: str | None = None
    date_format: str | None = Field(None, description="strptime format for date columns, e.g. %d/%m/%Y")
    extra_columns: Literal["error", "ignore"] = "error"
    layer: str | None = None
    crs: str | None = Field(None, description="CRS to assume when a geometry file declares none")

    @property
    def resolved_format(self) -> FileFormat:
        """The declared format, or the one implied by the file suffix."""
        if self.format:
            return self.format
        suffix = self.path.suffix.lower()
        if suffix not in _SUFFIX_FORMATS:
            raise ConfigError(
                f"cannot infer the format of {self.path} from its suffix {suffix!r}; "
                f"set 'format' to one of {sorted(set(_SUFFIX_FORMATS.values()))}"
            )
        return _SUFFIX_FORMATS[suffix]


class SourcesConfig(_Strict):
    """The inputs. Either record-level `hospitalizations` or aggregated `hospitalization_counts`."""

    regions: SourceConfig
    census: SourceConfig | None = None
    hospitalizations: SourceConfig | None = None
    hospitalization_counts: SourceConfig | None = None
    pollutant_stations: SourceConfig | None = None
    pollutant_readings: SourceConfig | None = None
    socioeconomic_indicators: SourceConfig | None = None
    cxr_manifest: SourceConfig | None = None

    @model_validator(mode="after")
    def _one_hospitalization_input(self) -> SourcesConfig:
        if (self.hospitalizations is None) == (self.hospitalization_counts is None):
            raise ValueError("give exactly one of 'hospitalizations' (records) or 'hospitalization_counts' (aggregated)")
        if self.hospitalizations is not None and self.census is None:
            raise ValueError("record-level 'hospitalizations' need a 'census' source for populations")
        if (self.pollutant_readings is None) != (self.pollutant_stations is None):
            raise ValueError("'pollutant_stations' and 'pollutant_readings' come together")
        return self

    def configured(self) -> dict[str, SourceConfig]:
        """The sources present in this configuration, by name."""
        return {name: cfg for name, cfg in self if cfg is not None}


class WarehouseConfig(_Strict):
    """Where tables (Parquet) and the published DuckDB catalog live."""

    root: Path = Path("warehouse")
    catalog_name: str = Field("catalog.duckdb", description="plain file name inside the warehouse, ending in .duckdb")

    @field_validator("catalog_name")
    @classmethod
    def _plain_name_inside(cls, v: str) -> str:
        parts = {PurePosixPath(v).name, PureWindowsPath(v).name}
        if parts != {v} or v in ("", ".", "..") or v.startswith("."):
            raise ValueError(f"catalog_name {v!r} must be a plain file name inside the warehouse folder "
                             f"(no folder such as tables/, no absolute path, no '..', not hidden), e.g. catalog.duckdb")
        if not v.endswith(".duckdb") or v == ".duckdb":
            raise ValueError(f"catalog_name {v!r} must end in .duckdb, e.g. catalog.duckdb")
        return v


class PeriodsConfig(_Strict):
    """Analysis periods: calendar years of admission, inclusive."""

    start: StrictInt = Field(ge=1900, le=2200)
    end: StrictInt = Field(ge=1900, le=2200)

    @model_validator(mode="after")
    def _ordered(self) -> PeriodsConfig:
        if self.end < self.start:
            raise ValueError(f"periods.end ({self.end}) is before periods.start ({self.start})")
        return self

    @property
    def keys(self) -> list[str]:
        """Partition keys, one per year."""
        return [str(y) for y in range(self.start, self.end + 1)]


class SeverityConfig(_Strict):
    """Which criteria make a case severe; a case is severe if any enabled criterion holds."""

    death: StrictBool = True
    los_days_gt: StrictInt | None = Field(14, ge=0, description="length of stay above this many days")
    icu: StrictBool = True


class ReferencePopulationConfig(_Strict):
    """Standard population for direct age standardisation."""

    kind: Literal["study", "custom"] = "study"
    year: StrictInt | None = Field(None, description="study population of this year; all periods pooled when null")
    weights: dict[str, StrictFloat] | None = Field(None, description="age_group -> weight, for kind=custom")

    @model_validator(mode="after")
    def _custom_has_weights(self) -> ReferencePopulationConfig:
        if self.kind == "custom" and not self.weights:
            raise ValueError("reference_population.kind=custom needs 'weights' (age_group -> weight)")
        return self


class OutcomesConfig(_Strict):
    """Case and severity definitions and public-release rules."""

    case_icd10: list[str] = Field(default_factory=lambda: ["E10-E14"], description="codes or ranges, e.g. E11, E10-E14")
    severity: SeverityConfig = SeverityConfig()
    suppression_threshold: StrictInt = Field(5, ge=1)
    reference_population: ReferencePopulationConfig = ReferencePopulationConfig()
    confidence_level: StrictFloat = Field(0.95, gt=0.5, lt=1)

    @field_validator("case_icd10")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("case_icd10 needs at least one code or range")
        return v


GUIDELINES = {"PM25": 15.0, "PM10": 45.0, "NO2": 25.0, "SO2": 40.0, "CO": 4.0, "O3": 100.0}


class ExposureConfig(_Strict):
    """Pollutant guideline levels (WHO 2021, 24-hour; O3 8-hour) and station-to-region assignment."""

    guidelines: dict[str, StrictFloat] = Field(
        default_factory=lambda: dict(GUIDELINES),
        description="pollutant -> guideline level; the keys given override the WHO 2021 defaults, the rest stay",
    )
    idw_radius_km: StrictFloat = Field(50.0, gt=0)
    idw_max_stations: StrictInt = Field(3, ge=1)
    idw_power: StrictFloat = Field(2.0, gt=0)
    projected_crs: str | None = Field(None, description="CRS for distances; estimated (UTM) from the regions when null")

    @field_validator("guidelines", mode="before")
    @classmethod
    def _known_pollutants_over_defaults(cls, v: object) -> object:
        if not isinstance(v, dict):
            return v
        unknown = sorted(set(map(str, v)) - set(GUIDELINES))
        if unknown:
            raise ValueError(f"guidelines name unknown pollutant(s) {unknown}; the known ones are {sorted(GUIDELINES)}")
        return GUIDELINES | v


class QualityConfig(_Strict):
    """Data-quality gates."""

    max_reject_share: StrictFloat = Field(
        0.05, ge=0, le=1, description="ingest check fails above this quarantined share"
    )
    max_region_reject_share: StrictFloat = Field(
        0.0, ge=0, le=1,
        description="regions check fails above this quarantined share of regions; every record of a lost region "
        "is lost with it, so by default no region may be lost",
    )


class EpiatlasConfig(_Strict):
    """The whole run: inputs, periods, definitions, warehouse."""

    name: str = "epiatlas"
    synthetic: StrictBool = Field(False, description="true for generated demo data; every output then says so")
    sources: SourcesConfig
    periods: PeriodsConfig
    warehouse: WarehouseConfig = WarehouseConfig()
    outcomes: OutcomesConfig = OutcomesConfig()
    exposure: ExposureConfig = ExposureConfig()
    quality: QualityConfig = QualityConfig()
    covariates: dict[CovariateName, CovariateTableConfig] = Field(
        default_factory=dict, description="the user's own covariate tables: table name -> file and variables")
    indices: IndicesSettings = Field(default_factory=IndicesSettings, description="socioeconomic factor indices")
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="count models and their explanations")
    imaging: ImagingConfig | None = Field(None, description="chest X-ray classifier; needs sources.cxr_manifest")
    reports: ReportsConfig = Field(default_factory=ReportsConfig, description="regional reports and their schedule")
    config_path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _imaging_has_a_manifest(self) -> EpiatlasConfig:
        if (self.imaging is None) != (self.sources.cxr_manifest is None):
            raise ValueError("'imaging' and 'sources.cxr_manifest' come together: the manifest lists the images, "
                             "imaging says where they are and how to classify them")
        return self

    @model_validator(mode="after")
    def _imaging_covariates_need_imaging(self) -> EpiatlasConfig:
        if problem := self.models.imaging_problem(self.imaging is not None):
            raise ValueError(problem)
        return self

    def resolve_paths(self, base: Path) -> EpiatlasConfig:
        """Return a copy whose relative paths are anchored at `base`."""

        def anchor(p: Path) -> Path:
            return p if p.is_absolute() else (base / p).resolve()

        sources = {
            name: cfg.model_copy(update={"path": anchor(cfg.path)}) for name, cfg in self.sources.configured().items()
        }
        return self.model_copy(
            update={
                "sources": self.sources.model_copy(update=sources),
                "warehouse": self.warehouse.model_copy(update={"root": anchor(self.warehouse.root)}),
                "covariates": {name: cov.model_copy(update={"path": anchor(cov.path)})
                               for name, cov in self.covariates.items()},
                "imaging": self.imaging.anchored(anchor) if self.imaging else None,
            }
        )


def _problems(exc: ValidationError) -> str:
    """One line per validation error: the dotted key, what is wrong, and the value given when it is a plain value."""
    lines = []
    for err in exc.errors(include_url=False):
        key = ".".join(map(str, err["loc"])) or "(top level)"
        given = err.get("input")
        got = "" if isinstance(given, dict | list) else f" (given: {given!r})"
        lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}{got}")
    return "\n".join(lines)


def warehouse_root_problem(cfg: EpiatlasConfig) -> str | None:
    """Why `warehouse.root` (resolved) is not a dedicated folder: the file-system root, home, or holding the sources."""
    root = cfg.warehouse.root.resolve()
    if root.parent == root:
        return f"warehouse.root {root} is the file-system root"
    if root == Path.home().resolve():
        return f"warehouse.root {root} is the home folder"
    inside = [f"{name} ({src.path})" for name, src in cfg.sources.configured().items()
              if src.path.resolve().is_relative_to(root)]
    if inside:
        return f"warehouse.root {root} holds the source file(s) {', '.join(inside)}"
    return None


def load_config(path: str | Path) -> EpiatlasConfig:
    """Read and validate a YAML config; relative paths resolve against the file's directory. Parsed once per process
    while the file is unchanged."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return _parse_config(path)


def _read_config(path: Path) -> EpiatlasConfig:
    raw = read_yaml_mapping(path, ConfigError, "configuration")
    try:
        cfg = EpiatlasConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid configuration (fix these keys):\n{_problems(exc)}") from exc
    cfg = cfg.resolve_paths(path.parent).model_copy(update={"config_path": path})
    if problem := warehouse_root_problem(cfg):
        raise ConfigError(f"{path}: {problem} (rule: the warehouse is a dedicated folder, which epiatlas may "
                          f"fill and clean); set warehouse.root to a folder of its own, e.g. warehouse")
    return cfg


_parse_config = cached_parse(_read_config)


def dump_config(cfg: EpiatlasConfig, path: str | Path) -> None:
    """Write a config as YAML (paths as strings), e.g. for the generated demo."""
    data = cfg.model_dump(mode="json", exclude_none=True)
    if "indicators" not in cfg.indices.model_fields_set:  # the default follows the source's columns: keep it a default
        data["indices"].pop("indicators")
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
