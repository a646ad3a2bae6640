"""A published Poisson fit reproduced through the product: real data run as a user's own (counts + expected +
covariates, no indicators, no pollutants), the textbook GLM with the penalty off.

Data: Tokyo metropolitan area, deaths aged 25-64 in 1990, 262 municipalities (libpysal's bundled `tokyo` example,
GWR4 sample data by T. Nakaya; Nakaya, Fotheringham, Brunsdon & Charlton 2005, Stat Med 24:2695-2717). Reference
numbers: the "Global regression result" of GWR4 4.0.90's output `tokyo_BS_NN_OFF_summary.txt`, shipped with
libpysal in `libpysal/examples/tokyo/` (Poisson, log link, offset log(expected), unstandardised covariates, printed
to 6 decimals). See tests/data/reference_tokyo/README.md.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import yaml

from epiatlas.analyses import analysis_plan
from epiatlas.config import load_config
from epiatlas.publish import warehouse_for
from orchestration.definitions import asset_keys, build_definitions
from orchestration.runner import run_pipeline

FIXTURE = Path(__file__).parent / "data" / "reference_tokyo"
# term: (estimate, standard error), GWR4 4.0.90 tokyo_BS_NN_OFF_summary.txt, "Global regression result"
PUBLISHED = {
    "intercept": (0.007470, 0.065139),
    "occ_tec": (-2.287906, 0.162000),
    "ownh": (-0.259692, 0.047050),
    "pop65": (2.199387, 0.198270),
    "unemp": (0.064025, 0.010997),
}
PUBLISHED_DEVIANCE = 389.281580  # on 262 areas, 5 parameters (df 257)
TOLERANCE = 1e-4
VARIABLES = {
    "occ_tec": ("proportion", "Proportion of professional and technical workers."),
    "ownh": ("proportion", "Proportion of owned houses."),
    "pop65": ("proportion", "Proportion of the population aged 65 or more."),
    "unemp": ("percent", "Unemployment rate."),
}


def tokyo_config(folder: Path, **models: object) -> Path:
    """The fixture as a user would configure it: aggregated counts with expected counts, region-level covariates."""
    for name in ("counts.csv", "covariates.csv", "regions.geojson"):
        shutil.copy(FIXTURE / name, folder / name)
    config = {
        "name": "Tokyo working-age mortality 1990 (reference)",
        "sources": {"regions": {"path": "regions.geojson"}, "hospitalization_counts": {"path": "counts.csv"}},
        "periods": {"start": 1990, "end": 1990},
        "warehouse": {"root": "warehouse"},
        "covariates": {"area": {"path": "covariates.csv", "variables": {
            name: {"unit": unit, "description": text, "min": 0} for name, (unit, text) in VARIABLES.items()}}},
        "models": {"covariates": list(VARIABLES), "glm": {"family": "poisson", "penalty": False, "bootstrap": 0},
                   **models},
        "reports": {"level": "parent", "pdf": False},
    }  # fmt: skip
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokyo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, list[str]]:
    config = tokyo_config(tmp_path_factory.mktemp("tokyo"))
    start = time.perf_counter()
    summary, _ = run_pipeline(config, in_process=True)
    return config, time.perf_counter() - start, summary.failed_checks


def _catalog(config: Path, sql: str) -> list[tuple]:
    with warehouse_for(load_config(config)).read_catalog() as con:
        return con.execute(sql).fetchall()


def test_the_graph_holds_the_count_models_and_no_indices(tmp_path: Path) -> None:
    config = tokyo_config(tmp_path)
    plan = analysis_plan(load_config(config))
    assert (plan.indices.on, plan.count_models.on, plan.severity.on, plan.imaging.on) == (False, True, False, False)
    keys = {k.to_user_string() for k in asset_keys(build_definitions(config))}
    assert {"glm_coefficients", "covariates_area", "region_profile"} <= keys
    assert not keys & {"socioeconomic_indices", "factor_loadings", "cxr_images"}


def test_published_poisson_estimates_and_deviance_are_reproduced(tokyo_run: tuple[Path, float, list[str]]) -> None:
    config, _, failed_checks = tokyo_run
    assert failed_checks == []
    rows = _catalog(config, "SELECT term, estimate_per_unit, std_error, covariate_sd, family, inference "
                            "FROM glm_coefficients WHERE outcome = 'cases'")
    by_term = {term: (per_unit, se, sd) for term, per_unit, se, sd, _, _ in rows}
    assert {family for *_, family, _ in rows} == {"poisson"} and {inf for *_, inf in rows} == {"unpenalized"}
    assert set(by_term) == set(PUBLISHED)
    for term, (estimate, std_error) in PUBLISHED.items():
        per_unit, se, sd = by_term[term]
        assert per_unit == pytest.approx(estimate, abs=TOLERANCE), term
        if term != "intercept":  # the table's SE is per SD of the covariate; per unit it is SE / SD
            assert se / sd == pytest.approx(std_error, abs=TOLERANCE), term
    [(deviance, n, dropped)] = _catalog(config, "SELECT deviance, n, dropped_covariates FROM glm_fit "
                                                "WHERE outcome = 'cases'")
    assert deviance == pytest.approx(PUBLISHED_DEVIANCE, abs=TOLERANCE)
    assert (n, dropped) == (262, "none")


def test_every_row_is_accounted_for_and_the_run_is_quick(tokyo_run: tuple[Path, float, list[str]]) -> None:
    config, seconds, _ = tokyo_run
    with warehouse_for(load_config(config)).connect(["region_period_outcomes"]) as con:  # private: not in the catalog
        [(cases, regions)] = con.execute("SELECT sum(cases), count(DISTINCT region_id) FROM region_period_outcomes"
                                         ).fetchall()
    assert (cases, regions) == (46163, 262)
    [(info_partial, analyses)] = _catalog(config, "SELECT partial, analyses FROM catalog_info")
    assert info_partial == "false" and "indices: off" in analyses and "count_models: on" in analyses
    repaired = _catalog(config, "SELECT rows FROM quarantine_summary WHERE action = 'repaired'")
    assert repaired == [(10,)]  # ten boundaries invalid as shipped, repaired and recorded
    assert seconds < 60, f"the 262-area run took {seconds:.1f} s"
