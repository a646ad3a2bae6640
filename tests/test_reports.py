"""Region profiles, example queries and regional reports on one in-process run of the small demo.

One pipeline run (session scope, tests/report_fixtures.py) on a copy of the small demo's config with its own
warehouse; the reports job then writes the latest period's reports for a few regions (one with a suppressed cell),
as the schedule would.
"""

from __future__ import annotations

import re

import datetime
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from epiatlas.cli.main import app
from epiatlas.publish import publish_catalog, warehouse_for
from epiatlas.reports.build import DETAILED, report_for
from epiatlas.reports.config import ReportsConfig
from epiatlas.reports.html import external_references
from epiatlas.reports.inputs import read_catalog_data
from epiatlas.reports.profile import OUTCOME_COLUMNS, region_profile, revealed_cells
from epiatlas.resources import resource_dir
from orchestration.defs.reports import reports_schedule
from orchestration.jobs import REPORTS_JOB

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.report_fixtures"]
QUERIES = resource_dir("sql") / "queries"


class _Page(HTMLParser):
    """Collects the tags, image sources and text of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def run(reports_run: dict) -> dict:
    """The session's pipeline run and reports job (tests/report_fixtures.py)."""
    return reports_run


@pytest.fixture(scope="module")
def catalog(run: dict) -> dict[str, pd.DataFrame]:
    """The public tables the tests compare against, read from the published catalog."""
    names = ["region_profile", "published_outcomes", "regions", "region_drivers", "socioeconomic_indices",
             "pollutant_exposure", "model_predictions", "cxr_region_summary"]  # fmt: skip
    with warehouse_for(run["cfg"]).read_catalog() as con:
        tables = {n: con.table(n).df() for n in names}
        queries = sorted(QUERIES.glob("*.sql"))
        tables["queries"] = {p.stem: con.execute(p.read_text(encoding="utf-8")).df() for p in queries}
    return tables


# --- the mart ---------------------------------------------------------------------------------


def test_profile_has_every_region_period(run: dict, catalog: dict) -> None:
    profile = catalog["region_profile"]
    periods = range(run["cfg"].periods.start, run["latest"] + 1)
    expected = {(r, p) for r in catalog["regions"]["region_id"] for p in periods}
    assert set(zip(profile["region_id"], profile["period"], strict=True)) == expected
    assert len(profile) == len(expected)


def test_profile_hides_exactly_what_published_outcomes_hides(catalog: dict) -> None:
    profile, published = catalog["region_profile"], catalog["published_outcomes"]
    assert published["suppressed"].sum() > 0, "the small demo has hidden cells, so there is something to check"
    merged = profile.merge(published, on=["region_id", "period"], suffixes=("", "_pub"), validate="1:1")
    for column in OUTCOME_COLUMNS:
        mine, theirs = merged[column], merged[f"{column}_pub"]
        assert (mine.isna() == theirs.isna()).all(), column
        both = mine.notna()
        assert (mine[both] == theirs[both]).all(), column
    hidden = merged[merged["suppressed"]]
    assert hidden[["cases", "expected_cases", "shr", "crude_rate", "std_rate", "glm_residual"]].isna().all().all()
    assert revealed_cells(profile, published).empty


def test_revealed_cells_catches_a_leaked_count(catalog: dict) -> None:
    """The asset's disclosure check fails when the mart shows a count or a residual the published table hides."""
    profile = catalog["region_profile"].copy()
    hidden = profile.index[profile["suppressed"]][:2]
    leaked = profile.copy()
    leaked.loc[hidden[0], "cases"] = 3
    leaked.loc[hidden[1], "glm_residual"] = 0.5
    found = revealed_cells(leaked, catalog["published_outcomes"])
    assert len(found) == 2
    assert set(found["region_id"]) == set(profile.loc[hidden, "region_id"])


def test_profile_columns_equal_their_source_tables(catalog: dict) -> None:
    profile = catalog["region_profile"].set_index(["region_id", "period"])
    keys = ["region_id", "period"]
    composite = catalog["socioeconomic_indices"].query("index == 'composite'").set_index(keys)
    assert np.allclose(profile.loc[composite.index, "composite_score"], composite["score"])
    assert (profile.loc[composite.index, "composite_quintile"] == composite["quintile"]).all()
    some = catalog["socioeconomic_indices"].iloc[7]
    scores = profile.loc[(some["region_id"], some["period"]), "index_scores"]
    assert scores[some["index"]] == pytest.approx(some["score"])
    first = catalog["region_drivers"].query("outcome == 'cases' and rank == 1").set_index(keys)
    assert len(first) > 0
    assert (profile.loc[first.index, "driver_1"] == first["feature"]).all()
    assert np.allclose(profile.loc[first.index, "driver_1_shap"], first["shap_value"])
    assert profile["driver_1"].notna().sum() == len(first)
    pm = catalog["pollutant_exposure"].query("pollutant == 'PM25' and mean.notna()").set_index(keys)
    assert np.allclose(profile.loc[pm.index, "pm25_mean"], pm["mean"])
    glm = catalog["model_predictions"].query("outcome == 'cases' and model == 'glm'").set_index(keys)
    assert np.allclose(profile.loc[glm.index, "glm_fitted"], glm["fitted"])
    images = catalog["cxr_region_summary"].set_index(keys)
    assert (profile.loc[images.index, "imaging_suppressed"] == images["suppressed"]).all()
    shown = images["n_images"].notna()
    assert (profile.loc[images.index[shown], "n_images"] == images.loc[shown, "n_images"]).all()


# --- the example queries, each against the same figure computed in pandas from the base tables ----------


def _visible(catalog: dict) -> pd.DataFrame:
    published = catalog["published_outcomes"]
    return published[~published["suppressed"]]


def test_query_highest_shr_and_drivers(catalog: dict) -> None:
    result = catalog["queries"]["06_highest_shr_and_drivers"]
    visible = _visible(catalog)
    latest = visible[visible["period"] == visible["period"].max()]
    top = latest.sort_values(["shr", "region_id"], ascending=[False, True]).head(20)
    assert list(result["region_id"]) == list(top["region_id"])
    assert np.allclose(result["shr"], top["shr"].round(3))
    second = catalog["region_drivers"].query("outcome == 'cases' and rank == 2")
    drivers = second.set_index(["region_id", "period"])["feature"]
    expected = [drivers.get((r, p)) for r, p in zip(top["region_id"], top["period"], strict=True)]
    assert [None if pd.isna(v) else v for v in result["driver_2"]] == expected


def test_query_deprivation_quintile_and_shr(catalog: dict) -> None:
    result = catalog["queries"]["07_deprivation_quintile_and_shr"].set_index(["period", "composite_quintile"])
    quintiles = catalog["socioeconomic_indices"].query("index == 'composite'")[["region_id", "period", "quintile"]]
    joined = catalog["published_outcomes"].merge(quintiles, on=["region_id", "period"])
    for (period, quintile), group in joined.groupby(["period", "quintile"]):
        row = result.loc[(period, quintile)]
        seen = group[~group["suppressed"]]
        assert row["regions"] == len(group)
        assert row["hidden_cells"] == group["suppressed"].sum()
        assert row["cases"] == seen["cases"].sum()
        assert row["pooled_shr"] == pytest.approx(round(seen["cases"].sum() / seen["expected_cases"].sum(), 3))
    assert len(result) == joined.groupby(["period", "quintile"]).ngroups


def test_query_imaging_vs_hospitalization(catalog: dict) -> None:
    result = catalog["queries"]["08_imaging_vs_hospitalization"].set_index("region_id")
    images = catalog["cxr_region_summary"]
    both = images[~images["suppressed"]].merge(_visible(catalog), on=["region_id", "period"])
    assert len(both) > 0 and len(result) == both["region_id"].nunique()
    for region, group in both.groupby("region_id"):
        n = group["n_images"].astype(float)
        pneumonia = (n * (group["share_bacterial"] + group["share_viral"] + group["share_covid19"])).sum() / n.sum()
        assert result.loc[region, "images"] == n.sum()
        assert result.loc[region, "pneumonia_share"] == pytest.approx(round(pneumonia, 3), abs=1e-9)
        pooled = group["cases"].sum() / group["expected_cases"].sum()
        assert result.loc[region, "pooled_shr"] == pytest.approx(round(pooled, 3))


def test_query_trend_per_region(catalog: dict) -> None:
    result = catalog["queries"]["09_trend_per_region"]
    published = catalog["published_outcomes"].sort_values(["region_id", "period"]).reset_index(drop=True)
    assert list(zip(result["region_id"], result["period"], strict=True)) == list(
        zip(published["region_id"], published["period"], strict=True))
    change = published.groupby("region_id")["shr"].diff()
    assert ((result["change_from_previous"].isna()) == change.isna()).all()
    known = change.notna()
    assert known.sum() > 0
    assert np.allclose(result.loc[known, "change_from_previous"], change[known], atol=1e-3)


# --- reports ---------------------------------------------------------------------------------


def _report_files(run: dict) -> tuple[pd.DataFrame, Path]:
    root = run["cfg"].warehouse.root
    rows = pd.read_parquet(root / "tables" / "reports" / f"period={run['latest']}" / "data.parquet")
    return rows, root / "artifacts"


def _html(run: dict, subject: str) -> str:
    rows, artifacts = _report_files(run)
    sha = rows.set_index("region_id").loc[subject, "sha256"]
    return (artifacts / f"report_{subject.lower()}_{run['latest']}" / f"{sha}.html").read_text(encoding="utf-8")


def test_reports_job_succeeds_with_its_checks(run: dict) -> None:
    result = run["result"]
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks} >= {"reports_self_contained", "reports_render", "contract_schema"}
    assert all(c.passed for c in checks), [(c.check_name, c.description) for c in checks if not c.passed]


def test_reports_table_lists_each_report_with_its_hash(run: dict) -> None:
    rows, artifacts = _report_files(run)
    assert set(rows["region_id"]) == {"national", run["hidden"], run["visible"]}
    for row in rows.itertuples():
        folder = artifacts / f"report_{row.region_id.lower()}_{run['latest']}"
        assert (folder / f"{row.sha256}.html").stat().st_size == row.bytes
        pdf = (folder / f"{row.pdf_sha256}.pdf").read_bytes()
        assert len(pdf) == row.pdf_bytes and pdf.startswith(b"%PDF-")


def test_region_report_is_self_contained_and_shows_suppression(run: dict) -> None:
    html = _html(run, run["hidden"])
    page = _Page()
    page.feed(html)
    page.close()
    assert page.tags[0] == "html" and "table" in page.tags
    text = " ".join(page.text)
    assert "SYNTHETIC DEMO DATA" in text
    assert f"suppressed (< {run['cfg'].outcomes.suppression_threshold})" in text
    assert len(page.images) >= 4 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert external_references(html) == [] and "http://" not in html and "https://" not in html
    assert "Methods and provenance" in text and "model_version" in text
    with warehouse_for(run["cfg"]).read_catalog() as con:
        (flag,) = con.execute("SELECT estimate FROM cxr_evaluation WHERE metric = 'shortcut_warning'").fetchone()
    assert ("Shortcut warning" in text) == (flag > 0)
    visible = " ".join(_collect_text(_html(run, run["visible"])))
    assert "SHR (95% CI)" in visible and "Drivers" in visible


def _collect_text(html: str) -> list[str]:
    page = _Page()
    page.feed(html)
    return page.text


def test_a_visible_region_shows_its_published_figures(run: dict, catalog: dict) -> None:
    row = catalog["published_outcomes"].query(f"region_id == '{run['visible']}' and period == {run['latest']}").iloc[0]
    text = " ".join(_collect_text(_html(run, run["visible"])))
    assert f"{row['cases']:,d}" in text
    assert f"{row['shr']:.2f} ({row['shr_lower']:.2f}-{row['shr_upper']:.2f})" in text


def test_national_summary_exists(run: dict) -> None:
    text = " ".join(_collect_text(_html(run, "national")))
    assert "national summary" in text and "SYNTHETIC DEMO DATA" in text and "Highest SHR" in text


def test_reports_are_published_at_the_next_publish(run: dict) -> None:
    written = pd.read_parquet(run["cfg"].warehouse.root / "tables" / "reports")
    assert len(written) > 3, "the whole refresh wrote every period's reports, the reports job the latest period's"
    published = publish_catalog(run["cfg"])
    assert published.rows["reports"] == len(written)


def test_report_command_writes_one_report(run: dict) -> None:
    runner = CliRunner()
    args = ["report", "--config", str(run["path"]), "--region", run["visible"], "--period", str(run["latest"])]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip().splitlines()[-1])
    assert path.is_file() and "SYNTHETIC DEMO DATA" in path.read_text(encoding="utf-8")
    assert path.parent.parent == run["cfg"].warehouse.root / "artifacts"
    pdf = Path(result.output.strip().splitlines()[-2])
    assert pdf.suffix == ".pdf" and pdf.parent == path.parent and pdf.read_bytes().startswith(b"%PDF")
    html_only = runner.invoke(app, [*args, "--no-pdf"])
    assert html_only.exit_code == 0 and not any(line.endswith(".pdf") for line in html_only.output.splitlines())
    unknown = runner.invoke(app, [*args[:4], "--region", "no-such-region", "--period", str(run["latest"])])
    assert unknown.exit_code == 2 and "no-such-region" in unknown.output


def test_schedule_targets_the_latest_period(run: dict) -> None:
    defs = run["defs"]
    schedule = defs.resolve_schedule_def("reports_schedule")
    assert schedule.cron_schedule == "0 6 1 * *" and schedule.job_name == REPORTS_JOB
    tick = datetime.datetime(2027, 1, 1, 6, tzinfo=datetime.UTC)
    with dg.build_schedule_context(repository_def=defs.get_repository_def(), scheduled_execution_time=tick) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == str(run["latest"])
    stopped = reports_schedule(run["cfg"].model_copy(update={"reports": ReportsConfig(enabled=False)}))
    assert stopped.default_status == dg.DefaultScheduleStatus.STOPPED
    catalog_deps = defs.resolve_assets_def("catalog").dependency_keys
    assert dg.AssetKey("region_profile") in catalog_deps and dg.AssetKey("reports") not in catalog_deps


def test_reports_config_is_strict() -> None:
    assert ReportsConfig().cron == "0 6 1 * *" and ReportsConfig().level == "region"
    for bad in ({"cron": "every day"}, {"level": "state"}, {"enabled": "yes"}, {"regions": []}, {"colour": "red"}):
        with pytest.raises(ValidationError):
            ReportsConfig(**bad)


def test_parent_level_report_covers_every_region_of_the_parent(run: dict) -> None:
    with warehouse_for(run["cfg"]).read_catalog() as con:
        data = read_catalog_data(con)
    parent = data.regions.dropna(subset=["parent_id"]).groupby("parent_id").filter(lambda g: len(g) > 1)
    parent_id = parent["parent_id"].iloc[0]
    report = report_for(data, parent_id, run["latest"], "parent", run_id="test")
    text = " ".join(_collect_text(report.html))
    members = parent[parent["parent_id"] == parent_id]["region_id"]
    assert report.level == "parent" and all(f"({rid})" in text for rid in members)
    assert external_references(report.html) == []


def test_parent_report_draws_the_highest_regions_one_by_one_and_lists_them_all(run: dict) -> None:
    """At parent level the per-region figures are for the DETAILED regions with the highest visible SHR; the trend
    grid and the driver table cover every region; figures spanning all periods are drawn once per run."""
    with warehouse_for(run["cfg"]).read_catalog() as con:
        data = read_catalog_data(con)
    sizes = data.regions.dropna(subset=["parent_id"]).groupby("parent_id")["region_id"].count()
    parent_id = sizes.idxmax()
    assert sizes.max() > DETAILED, "the small demo needs a parent with more regions than DETAILED"
    current = data.period_rows(run["latest"])
    mine = current[current["region_id"].isin(data.regions.loc[data.regions["parent_id"] == parent_id, "region_id"])]
    ranked = mine.assign(s=mine["shr"].fillna(-1.0)).sort_values(["s", "region_id"], ascending=[False, True])
    names = dict(zip(data.regions["region_id"], data.regions["name"], strict=True))
    cache: dict = {}
    report = report_for(data, parent_id, run["latest"], "parent", run_id="test", cache=cache)
    trends = re.findall(r'alt="SHR over periods, ([^"]+)"', report.html)
    assert trends == sorted(names[r] for r in ranked["region_id"].head(DETAILED))
    assert re.search(r'alt="SHR over periods of every region of [^"]+"', report.html)
    assert report.html.count("<tr><td>") >= 2 * len(mine)  # outcomes and driver tables list every region
    assert ("grid", parent_id) in cache and sum(k[0] == "trend" for k in cache) == DETAILED
    drawn = dict(cache)
    again = report_for(data, parent_id, run["latest"], "parent", run_id="test", cache=cache)
    assert cache == drawn and again.html == report.html  # nothing redrawn, same report


def test_profile_without_models_indices_or_imaging_keeps_every_row(catalog: dict) -> None:
    """A config without the optional groups still gets one row per published cell, its other columns NULL."""
    profile = region_profile(catalog["published_outcomes"], catalog["regions"])
    assert len(profile) == len(catalog["published_outcomes"])
    assert profile[["composite_score", "pm25_mean", "glm_fitted", "driver_1", "n_images"]].isna().all().all()
    assert revealed_cells(profile, catalog["published_outcomes"]).empty
