"""Inputs and configs of the analysis matrix (tests/test_analysis_matrix.py): one tiny demo, many configurations.

`MatrixInputs.build(folder)` generates the tiny demo once and derives from it every optional input a combination can
switch on: the indicator file without three columns, two user covariate tables and two aggregated count files.
`Combo` is one combination of optional inputs: its readable id, what it expects of the analysis plan (computed here
from the combination, independently of `epiatlas.analyses`), and `write_config` writes its config.yaml.
"""

from __future__ import annotations

import itertools
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyogrio
import yaml

from epiatlas.config import load_config
from epiatlas.demo import DemoSpec, generate_demo
from epiatlas.demo.severity import STATUS_CODES
from epiatlas.demo.socioeconomic import INDICATORS

# Smaller than DemoSpec.small(): 64 municipalities (two per state), two years, 8 stations, ~6k records, 160 images.
MATRIX_SPEC = DemoSpec(
    n_municipalities=64, min_municipalities_per_state=2, first_year=2019, n_years=2, n_stations=8,
    population_2020=3_000_000, defect_share=0.002, implausible_reading_share=0.001,
    n_images=160, n_imaging_centres=6, image_size=64, imaging_epochs=1,
)  # fmt: skip
EXTRA_INDICATORS = ("no_health_insurance", "no_internet", "informal_employment")  # dropped for the nine-indicator file
BAD_REGION = "XX999"  # a row of every derived file names it: rejected by the regions foreign key, never counted
REPORT_PARENTS = ["09"]  # one state's report (and the national one) per period keeps the reports step cheap
# Count models as cheap as their settings allow (the values tests/test_models_imaging_covariates.py uses).
FAST_MODELS = {"glm": {"bootstrap": 0, "moran_permutations": 19, "n_alphas": 10}, "gbm": {"max_rounds": 60},
               "pdp_grid_points": 5}  # fmt: skip
# The classifier as cheap as TrainSettings allows: one epoch, stop at once, at the phantoms' own 64 px (the smallest
# generate_phantoms draws); no Grad-CAM overlay figures.
FAST_TRAIN = {"epochs": 1, "patience": 1}
FAST_IMAGING = {"overlays_per_class": 0}
IMAGING_COVARIATE = "mean_p_pneumonia"  # varies even when the one-epoch classifier calls every image normal

INDICATOR_LEVELS = ("none", "nine", "twelve")
COVARIATE_LEVELS = ("none", "region", "region_period")
SOURCE_LEVELS = ("records", "counts_population", "counts_expected")  # counts_population has deaths, _expected none
PERIOD_LEVELS = ("one", "several")


@dataclass(frozen=True)
class Combo:
    """One combination of optional inputs."""

    indicators: str  # INDICATOR_LEVELS
    pollutants: bool
    covariates: str  # COVARIATE_LEVELS
    source: str  # SOURCE_LEVELS
    periods: str  # PERIOD_LEVELS
    imaging: bool
    imaging_covariate: bool = False  # models.imaging_covariates: [mean_p_pneumonia] (needs imaging)

    def __post_init__(self) -> None:
        assert self.indicators in INDICATOR_LEVELS and self.covariates in COVARIATE_LEVELS
        assert self.source in SOURCE_LEVELS and self.periods in PERIOD_LEVELS
        assert self.imaging or not self.imaging_covariate

    @property
    def id(self) -> str:
        """e.g. 'ind12-pol-cov_rp-records-periods3-img'."""
        ind = {"none": "ind0", "nine": "ind9", "twelve": "ind12"}[self.indicators]
        cov = {"none": "cov0", "region": "cov_r", "region_period": "cov_rp"}[self.covariates]
        src = {"records": "records", "counts_population": "counts_pop_deaths", "counts_expected": "counts_exp"}
        img = ("img_cov" if self.imaging_covariate else "img") if self.imaging else "img0"
        return "-".join([ind, "pol" if self.pollutants else "pol0", cov, src[self.source],
                         f"{self.periods}_period{'s' if self.periods == 'several' else ''}", img])  # fmt: skip

    def levels(self) -> tuple[str, ...]:
        """The level of each design factor (for the pairwise coverage check)."""
        return (self.indicators, str(self.pollutants), self.covariates, self.source, self.periods, str(self.imaging))

    # --- what the combination should switch on, from its inputs alone -------------------------------------------
    @property
    def indices_on(self) -> bool:
        return self.indicators != "none"  # nine and twelve are both >= 3 indicator columns

    @property
    def count_models_on(self) -> bool:
        return self.indices_on or self.pollutants or self.covariates != "none" or self.imaging_covariate

    @property
    def deaths_in_input(self) -> bool:
        return self.source != "counts_expected"  # records carry the discharge status; counts_expected has no deaths

    @property
    def severity_on(self) -> bool:
        return self.count_models_on and self.deaths_in_input


FACTORS = ("indicators", "pollutants", "covariates", "source", "periods", "imaging")


def uncovered_pairs(combos: Sequence[Combo]) -> list[tuple[str, str, str, str]]:
    """(factor, level, factor, level) pairs no combination has; [] for a pairwise covering design."""
    levels = [INDICATOR_LEVELS, ("False", "True"), COVARIATE_LEVELS, SOURCE_LEVELS, PERIOD_LEVELS, ("False", "True")]
    seen = {(a, c.levels()[a], b, c.levels()[b]) for c in combos for a, b in itertools.combinations(range(6), 2)}
    return [(FACTORS[a], x, FACTORS[b], y) for a, b in itertools.combinations(range(6), 2)
            for x in levels[a] for y in levels[b] if (a, x, b, y) not in seen]  # fmt: skip


@dataclass
class MatrixInputs:
    """The tiny demo and the files derived from it."""

    folder: Path
    demo_config: Path
    base: dict  # the demo's config as plain values, source paths absolute
    years: list[int]
    indicators_nine: Path
    covariates_region: Path
    covariates_region_period: Path
    counts_population: Path
    counts_expected: Path
    count_cases: dict[int, int] = field(default_factory=dict)  # cases per year in the count files (bad row excluded)

    @classmethod
    def build(cls, folder: Path) -> MatrixInputs:
        demo = generate_demo(folder / "demo", MATRIX_SPEC)
        cfg = load_config(demo)
        base = cfg.model_dump(mode="json", exclude_none=True)
        src = cfg.sources
        derived = folder / "derived"
        derived.mkdir()
        region_ids = sorted(pyogrio.read_dataframe(src.regions.path, layer=src.regions.layer,
                                                   columns=["CVE_MUN"], read_geometry=False)["CVE_MUN"])  # fmt: skip
        years = MATRIX_SPEC.years
        inputs = cls(
            folder=folder, demo_config=demo, base=base, years=years,
            indicators_nine=derived / "indicadores_nueve.csv",
            covariates_region=derived / "covariables_municipio.csv",
            covariates_region_period=derived / "covariables_municipio_anio.csv",
            counts_population=derived / "conteos_poblacion.csv",
            counts_expected=derived / "conteos_esperados.csv",
        )  # fmt: skip
        dropped = {i.file_column for i in INDICATORS if i.canonical in EXTRA_INDICATORS}
        assert len(dropped) == len(EXTRA_INDICATORS)
        indicators = pd.read_csv(src.socioeconomic_indicators.path, dtype={"cve_mun": str})
        indicators.drop(columns=sorted(dropped)).to_csv(inputs.indicators_nine, index=False)

        rng = np.random.default_rng(MATRIX_SPEC.seed)  # values vary between regions (and years), fixed seed
        clinics = rng.uniform(0.5, 12.0, len(region_ids)).round(3)
        region_rows = pd.DataFrame({"cve_mun": region_ids, "clinicas": clinics})
        pd.concat([region_rows, pd.DataFrame({"cve_mun": [BAD_REGION], "clinicas": [1.0]})]).to_csv(
            inputs.covariates_region, index=False)
        cells = pd.DataFrame([(r, y) for r in region_ids for y in years], columns=["cve_mun", "anio"])
        cells["verde"] = rng.uniform(1.0, 60.0, len(cells)).round(2)
        pd.concat([cells, pd.DataFrame({"cve_mun": [BAD_REGION], "anio": [years[0]], "verde": [10.0]})]).to_csv(
            inputs.covariates_region_period, index=False)

        counts = duckdb.sql(f"""
            WITH pop AS (SELECT cve_mun, anio, sum(poblacion)::BIGINT AS pob
                         FROM read_csv('{src.census.path}', types = {{'cve_mun': 'VARCHAR'}}) GROUP BY ALL),
                 cases AS (SELECT cve_mun_res AS cve_mun, year(fecha_ingreso) AS anio, count(*) AS casos,
                                  count(*) FILTER (motivo_egreso = '{STATUS_CODES["death"]}') AS defunciones
                           FROM '{src.hospitalizations.path}'
                           WHERE diag_principal >= 'E10' AND diag_principal < 'E15' GROUP BY ALL)
            SELECT pop.cve_mun, pop.anio, coalesce(casos, 0) AS casos, coalesce(defunciones, 0) AS defunciones, pob
            FROM pop LEFT JOIN cases USING (cve_mun, anio) ORDER BY ALL
        """).df()  # fmt: skip
        assert len(counts) == len(region_ids) * len(years) and counts["casos"].sum() > 0
        inputs.count_cases = {int(y): int(n) for y, n in counts.groupby("anio")["casos"].sum().items()}
        bad = pd.DataFrame({"cve_mun": [BAD_REGION], "anio": [years[-1]], "casos": [7], "defunciones": [1],
                            "pob": [1000]})  # fmt: skip
        pd.concat([counts, bad]).to_csv(inputs.counts_population, index=False)
        rate = counts.groupby("anio")["casos"].transform("sum") / counts.groupby("anio")["pob"].transform("sum")
        expected = counts.assign(esperados=(counts["pob"] * rate).round(4))[["cve_mun", "anio", "casos", "esperados"]]
        pd.concat([expected, bad.assign(esperados=3.5)[expected.columns]]).to_csv(inputs.counts_expected, index=False)
        return inputs

    def config(self, combo: Combo, warehouse: Path) -> dict:
        """The combination's config as plain values."""
        cfg = yaml.safe_load(yaml.safe_dump(self.base))  # a deep copy
        # `base` is a plain model_dump, which writes the default indices.indicators (all 12) that analysis_plan
        # would read as an explicit request; the matrix tests the default (the indicators the source maps), as a
        # config written by dump_config keeps it (test_a_dumped_config_plans_like_the_config_it_was_read_from).
        cfg["indices"].pop("indicators", None)
        sources = cfg["sources"]
        cfg["warehouse"]["root"] = str(warehouse)
        one = combo.periods == "one"
        cfg["periods"] = {"start": self.years[-1] if one else self.years[0], "end": self.years[-1]}
        cfg["reports"] = {"pdf": False, "level": "parent", "regions": list(REPORT_PARENTS)}
        imaging_covariates = [IMAGING_COVARIATE] if combo.imaging_covariate else []
        cfg["models"] = dict(FAST_MODELS) | {"imaging_covariates": imaging_covariates}

        if combo.indicators == "none":
            sources.pop("socioeconomic_indicators")
        elif combo.indicators == "nine":
            indicators = sources["socioeconomic_indicators"]
            indicators["path"] = str(self.indicators_nine)
            indicators["columns"] = {k: v for k, v in indicators["columns"].items() if k not in EXTRA_INDICATORS}
        if not combo.pollutants:
            sources.pop("pollutant_stations")
            sources.pop("pollutant_readings")
        if combo.covariates == "region":
            cfg["covariates"] = {"health_services": {
                "path": str(self.covariates_region), "region_column": "cve_mun",
                "variables": {"clinics_per_10k": {"column": "clinicas", "unit": "clinics per 10,000 persons",
                                                  "description": "Primary-care clinics per 10,000 persons.",
                                                  "min": 0}}}}  # fmt: skip
        elif combo.covariates == "region_period":
            cfg["covariates"] = {"environment": {
                "path": str(self.covariates_region_period), "region_column": "cve_mun", "period_column": "anio",
                "variables": {"green_space": {"column": "verde", "unit": "percent", "min": 0, "max": 100,
                                              "description": "Share of the area that is green space."}}}}  # fmt: skip
        if combo.source != "records":
            sources.pop("hospitalizations")
            sources.pop("census")
            columns = {"region_id": "cve_mun", "period": "anio", "cases": "casos"}
            if combo.source == "counts_population":
                path, columns = self.counts_population, columns | {"deaths": "defunciones", "population": "pob"}
            else:
                path, columns = self.counts_expected, columns | {"expected_cases": "esperados"}
            sources["hospitalization_counts"] = {"path": str(path), "columns": columns}
        if combo.imaging:
            cfg["imaging"].update(FAST_IMAGING)
            cfg["imaging"]["train"].update(FAST_TRAIN)
        else:
            cfg.pop("imaging")
            sources.pop("cxr_manifest")
        return cfg

    def write_config(self, combo: Combo, folder: Path) -> Path:
        """config.yaml of the combination in `folder`, its warehouse in `folder`/wh."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(self.config(combo, folder / "wh"), sort_keys=False), encoding="utf-8")
        return path

    def count_cases_in(self, periods: Sequence[int]) -> int:
        """Cases of the count files' valid rows in `periods`."""
        return sum(self.count_cases[int(p)] for p in periods)


def file_rows(path: Path, layer: str | None = None) -> int:
    """Data rows of an input file, counted independently of the ingest code."""
    if path.suffix == ".gpkg":
        return int(pyogrio.read_info(path, layer=layer)["features"])
    if path.suffix == ".csv":
        scan = f"read_csv('{path}', all_varchar = true, header = true)"
    else:
        scan = f"read_parquet('{path}')"
    return duckdb.sql(f"SELECT count(*) FROM {scan}").fetchall()[0][0]


def run_config(config: str) -> dict:
    """Run the pipeline on one config in process: what the tests need of the run, or the error that stopped it.

    Module-level (and returning plain values) so that a process pool can run combinations side by side.
    """
    from orchestration.runner import run_pipeline

    started = time.perf_counter()
    try:
        summary, published = run_pipeline(Path(config), in_process=True)
    except Exception as exc:  # noqa: BLE001 - reported by the test that needs the run, with the cause
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                "seconds": time.perf_counter() - started}  # fmt: skip
    return {"error": None, "checks": summary.checks, "published": dict(published.rows),
            "seconds": time.perf_counter() - started}  # fmt: skip
