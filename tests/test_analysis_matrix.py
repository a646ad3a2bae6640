"""The asset graph follows the inputs: one tiny generated data set run through a covering design of optional inputs.

Design. Six factors of what a user's configuration can provide:

    indicators  none | nine (no_health_insurance, no_internet, informal_employment dropped from file and mapping)
                | twelve                                            -> factor indices (>= 3 indicator columns)
    pollutants  none | stations + readings                          -> PM2.5 exposure as a covariate
    covariates  none | region-level table | region x period table   -> user covariates (`covariates:`)
    source      records (hospitalizations + census) | counts with deaths and population
                | counts with expected_cases and no deaths          -> severity iff deaths are in the input
    periods     one (periods.start == periods.end) | several        -> no period dummies with one period
    imaging     off | on (the demo's imaging: section + sources.cxr_manifest, one training epoch)

3 x 2 x 3 x 3 x 2 x 2 = 216 full combinations; DESIGN's 9 runs cover every level of every factor and every PAIR
of levels of two factors (a strength-2 covering array, checked by `test_design_covers_every_pair_of_levels`),
including the all-off corner (no indicators, pollutants, covariates or imaging: count models off, the outcomes
still publish) and the all-on corner. Only 3 runs train the classifier (the fewest that pair imaging-on with every
level of the three-level factors). EXTRA adds the one configuration the pairs cannot reach: imaging as the only
covariate source (models.imaging_covariates), which must switch the count models on by itself.

Data. `MatrixInputs` (tests/matrix_fixtures.py) generates a demo smaller than DemoSpec.small() once per module
(64 municipalities, 2 years, ~6k records, 160 images) and derives the optional files from it; every derived file
(covariate tables, count files) has one row naming an unknown region, which must be quarantined and never counted.

What each combination asserts, with the expectation computed from the combination itself (`Combo.indices_on`,
...), not from `epiatlas.analyses`:
- the graph holds exactly the analyses whose inputs exist (socioeconomic_indices, glm_coefficients, cxr_images,
  and the exposure and covariate assets), and `analysis_plan` agrees, without problems;
- the run succeeds and publishes a whole catalog (catalog_info.partial 'false', its analyses line = the plan's);
- rows reconcile: for every ingest source, rows in the file = rows accepted + rows rejected to quarantine; the
  published outcome cases equal the input's cases in the configured periods;
- with count models on: glm_fit has a 'cases' row with n > 0, a severity row iff deaths are in the input, and no
  period dummy with one period.

Cost: every run is a whole in-process Dagster run (reports: one parent region, no PDF; models and classifier on
their cheapest settings), two at a time in a process pool (`runs`); each run's time is printed at the end of the
module. The tests that need a run are marked slow; the design and graph tests are not.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import pytest

from epiatlas.analyses import analysis_plan
from epiatlas.config import load_config
from epiatlas.covariates.source import covariate_table
from epiatlas.imaging.pipeline import QUARANTINE_SOURCE
from epiatlas.publish import warehouse_for
from orchestration.definitions import asset_keys, build_definitions
from tests.matrix_fixtures import Combo, MatrixInputs, file_rows, run_config, uncovered_pairs

# (indicators, pollutants, covariates, source, periods, imaging); found by a seeded search for a covering array.
DESIGN = [
    Combo("none", False, "none", "records", "one", False),  # all-off corner
    Combo("twelve", True, "region_period", "records", "several", True),  # all-on corner
    Combo("nine", True, "region", "records", "several", False),
    Combo("none", False, "region", "counts_population", "several", True),
    Combo("none", True, "region_period", "counts_expected", "several", False),
    Combo("twelve", True, "none", "counts_population", "several", False),
    Combo("nine", True, "none", "counts_expected", "one", True),
    Combo("nine", False, "region_period", "counts_population", "one", False),
    Combo("twelve", False, "region", "counts_expected", "one", False),
]
EXTRA = [Combo("none", False, "none", "records", "several", True, imaging_covariate=True)]
COMBOS = DESIGN + EXTRA
IDS = [c.id for c in COMBOS]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> MatrixInputs:
    """The tiny demo and its derived files, generated once for the module."""
    return MatrixInputs.build(tmp_path_factory.mktemp("matrix"))


def test_design_covers_every_pair_of_levels() -> None:
    assert len(set(IDS)) == len(IDS)
    assert uncovered_pairs(DESIGN) == []
    corners = {(c.indicators, c.pollutants, c.covariates, c.imaging) for c in DESIGN}
    assert ("none", False, "none", False) in corners and ("twelve", True, "region_period", True) in corners
    assert {c.count_models_on for c in DESIGN} == {c.severity_on for c in DESIGN} == {True, False}
    assert sum(c.imaging for c in DESIGN) == 3, "imaging runs are the slow ones: keep them the fewest that cover"


# --- the graph (no run) -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("combo", COMBOS, ids=IDS)
def test_graph_holds_exactly_the_analyses_whose_inputs_exist(inputs: MatrixInputs, combo: Combo,
                                                            tmp_path: Path) -> None:
    config = inputs.write_config(combo, tmp_path)
    keys = {k.to_user_string() for k in asset_keys(build_definitions(config))}
    expected = {
        "socioeconomic_indices": combo.indices_on,
        "socioeconomic_indicators": combo.indices_on,
        "glm_coefficients": combo.count_models_on,
        "glm_fit": combo.count_models_on,
        "cxr_images": combo.imaging,
        "cxr_region_summary": combo.imaging,
        "pollutant_exposure": combo.pollutants,
        "covariates_health_services": combo.covariates == "region",
        "covariates_environment": combo.covariates == "region_period",
        "hospitalizations": combo.source == "records",
        "hospitalization_counts": combo.source != "records",
    }
    assert {k: k in keys for k in expected} == expected
    assert {"regions", "region_period_outcomes", "published_outcomes", "catalog"} <= keys

    plan = analysis_plan(load_config(config))
    assert plan.problems == ()
    on = {a.name: a.on for a in plan.analyses}
    assert on == {"indices": combo.indices_on, "count_models": combo.count_models_on,
                  "severity": combo.severity_on, "imaging": combo.imaging}, plan.lines()  # fmt: skip
    assert len(plan.indicators) == {"none": 0, "nine": 9, "twelve": 12}[combo.indicators]
    assert plan.severity_outcome == ("deaths" if combo.severity_on else None)


def test_a_dumped_config_plans_like_the_config_it_was_read_from(inputs: MatrixInputs, tmp_path: Path) -> None:
    """load_config -> dump_config -> load_config must not change what runs (the demo writes its config.yaml so, and
    tests and users copy configs so). Nine indicators mapped, no indices.indicators key: indices on, no problem."""
    from epiatlas.config import dump_config

    original = load_config(inputs.write_config(Combo("nine", False, "none", "records", "one", False), tmp_path))
    dump_config(original, tmp_path / "dumped.yaml")
    dumped = load_config(tmp_path / "dumped.yaml")
    assert analysis_plan(original).problems == ()
    assert analysis_plan(dumped).problems == (), "dump_config wrote indices.indicators, an explicit request"
    assert analysis_plan(dumped).summary() == analysis_plan(original).summary()


# --- the runs ---------------------------------------------------------------------------------------------------

WORKERS = 2  # runs side by side: a run is mostly one busy core (Dagster's in-process steps run one at a time)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, inputs: MatrixInputs,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Future | None]]]:
    """Config and pending run of every selected combination: all started at once on a pool of WORKERS processes,
    the imaging ones (the longest) first; each test waits for its own. Under pytest-xdist (whose workers each see
    every item) nothing is started ahead: each combination runs inline when its first test needs it."""
    selected = {item.callspec.params["run"].id: item.callspec.params["run"] for item in request.session.items
                if hasattr(item, "callspec") and "run" in item.callspec.params}  # fmt: skip
    configs = {combo.id: inputs.write_config(combo, tmp_path_factory.mktemp(combo.id))
               for combo in sorted(selected.values(), key=lambda c: not c.imaging)}  # fmt: skip
    if os.environ.get("PYTEST_XDIST_WORKER"):
        yield {cid: (config, None) for cid, config in configs.items()}
        return
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {cid: (config, pool.submit(run_config, str(config))) for cid, config in configs.items()}
        yield pending
        for _, future in pending.values():
            future.cancel()
    _report_times(request, {cid: f.result()["seconds"] for cid, (_, f) in pending.items()
                            if f.done() and not f.cancelled() and f.exception() is None})  # fmt: skip


def _report_times(request: pytest.FixtureRequest, seconds: dict[str, float]) -> None:
    """One line per run with its own wall time (two ran at a time), printed when the module ends."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if seconds and capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n" + "\n".join(f"analysis matrix run {cid}: {s:.1f} s"
                                   for cid, s in sorted(seconds.items(), key=lambda kv: -kv[1])))  # fmt: skip


@pytest.fixture(scope="module", params=[pytest.param(c, id=c.id) for c in COMBOS])
def run(request: pytest.FixtureRequest, runs: dict[str, tuple[Path, Future | None]]) -> dict:
    """The combination's run (once per combination for the module); a failed run fails every test that needs it,
    with the cause."""
    combo: Combo = request.param
    config, future = runs[combo.id]
    result = future.result() if future is not None else run_config(str(config))
    if result["error"] is not None:
        where = "" if result["error"].startswith("PipelineRunError") else f"\n{result['traceback']}"  # else the cause
        pytest.fail(f"the run of {combo.id} failed after {result['seconds']:.0f} s: {result['error']}{where}",
                    pytrace=False)
    return {"combo": combo, "cfg": load_config(config), "checks": result["checks"], "seconds": result["seconds"]}


def _catalog_tables(cfg) -> set[str]:
    with warehouse_for(cfg).read_catalog() as cat:
        return {r[0] for r in cat.execute("SELECT table_name FROM information_schema.tables").fetchall()}


@pytest.mark.slow
def test_run_publishes_a_whole_catalog_with_the_planned_analyses(run: dict) -> None:
    combo, cfg = run["combo"], run["cfg"]
    with warehouse_for(cfg).read_catalog() as cat:
        partial, analyses = cat.execute("SELECT partial, analyses FROM catalog_info").fetchone()
        published = cat.execute("SELECT count(*) FROM published_outcomes").fetchone()[0]
    assert partial == "false"
    assert analyses == analysis_plan(cfg).summary()
    assert published > 0, "the outcomes publish whatever the optional analyses"
    tables = _catalog_tables(cfg)
    assert ("socioeconomic_indices" in tables, "glm_coefficients" in tables, "cxr_region_summary" in tables) == (
        combo.indices_on, combo.count_models_on, combo.imaging)
    assert [(asset, check) for asset, check, passed in run["checks"] if not passed] == []


@pytest.mark.slow
def test_every_row_read_is_accepted_or_quarantined(run: dict, inputs: MatrixInputs) -> None:
    combo, cfg = run["combo"], run["cfg"]
    files = {name: (src.path, src.layer) for name, src in cfg.sources.configured().items()}
    files |= {covariate_table(name): (table.path, None) for name, table in cfg.covariates.items()}
    reconciled = {asset for asset, check, passed in run["checks"] if check == "rows_reconcile" and passed}
    assert reconciled == set(files), "every ingest asset ran its rows_reconcile check, and it passed"
    with warehouse_for(cfg).connect(["quarantine", *files]) as con:
        rejected = dict(con.execute("SELECT source, count(*) FROM quarantine WHERE action = 'rejected' "
                                    "GROUP BY source").fetchall())  # fmt: skip
        accepted = {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in files}
    read = {name: file_rows(path, layer) for name, (path, layer) in files.items()}
    assert {n: accepted[n] + rejected.get(n, 0) for n in files} == read
    for name in files:
        if name.startswith("covariates_") or name == "hospitalization_counts":
            assert rejected.get(name) == 1, f"{name}: the row naming an unknown region is quarantined"
    if combo.source == "records":
        assert rejected.get("hospitalizations", 0) > 0, "the demo's defective records are quarantined"
    if combo.imaging:
        with warehouse_for(cfg).connect(["cxr_images"]) as con:
            images = con.execute("SELECT count(*) FROM cxr_images").fetchone()[0]
        assert images + rejected.get(QUARANTINE_SOURCE, 0) == accepted["cxr_manifest"]


@pytest.mark.slow
def test_published_outcome_cases_equal_the_input_cases_of_the_configured_periods(run: dict,
                                                                                 inputs: MatrixInputs) -> None:
    combo, cfg = run["combo"], run["cfg"]
    periods = [int(p) for p in cfg.periods.keys]
    assert len(periods) == (1 if combo.periods == "one" else len(inputs.years))
    with warehouse_for(cfg).connect(["region_period_outcomes", *(["hospitalizations"] if combo.source == "records"
                                                                  else [])]) as con:  # fmt: skip
        by_period = dict(con.execute("SELECT period, sum(cases) FROM region_period_outcomes GROUP BY 1").fetchall())
        if combo.source == "records":
            listed = ", ".join(map(str, periods))
            cases = con.execute(f"SELECT count(*) FROM hospitalizations WHERE icd10 >= 'E10' AND icd10 < 'E15' "
                                f"AND year(admission_date) IN ({listed})").fetchone()[0]  # fmt: skip
        else:
            cases = inputs.count_cases_in(periods)
    assert sorted(by_period) == periods
    assert sum(by_period.values()) == cases > 0


@pytest.mark.slow
def test_count_models_fit_when_on_with_severity_iff_deaths(run: dict) -> None:
    combo, cfg = run["combo"], run["cfg"]
    if not combo.count_models_on:
        assert not {"glm_fit", "glm_coefficients"} & _catalog_tables(cfg)
        return
    with warehouse_for(cfg).read_catalog() as cat:
        fit = dict(cat.execute("SELECT outcome, n FROM glm_fit").fetchall())
        terms = [r[0] for r in cat.execute("SELECT DISTINCT term FROM glm_coefficients").fetchall()]
    assert fit.get("cases", 0) > 0, fit
    assert ("deaths" in fit) == combo.deaths_in_input, fit
    assert "severe_cases" not in fit, "deaths come first when the input has them"
    period_terms = [t for t in terms if t.startswith("period_")]
    if combo.periods == "one":
        assert period_terms == [], "one period: no period dummy"
    else:
        assert period_terms, f"several periods: period dummies expected among {terms}"
