"""End to end: the demo's config and a differently laid-out data set run through Dagster into the warehouse."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from epiatlas.cli.main import app
from epiatlas.config import SourceConfig, dump_config, load_config
from epiatlas.errors import WarehouseLockedError
from epiatlas.publish import warehouse_for
from epiatlas.resources import resource_dir
from epiatlas.warehouse_lock import WarehouseLock
from orchestration.definitions import build_definitions
from orchestration.runner import WAREHOUSE_TAG, PipelineRunError, run_pipeline
from tests.demo_fixtures import without_imaging_or_pdf

pytestmark = pytest.mark.slow

INGESTED = ["regions", "census", "hospitalizations", "pollutant_stations", "pollutant_readings", "socioeconomic_indicators"]


@pytest.fixture(scope="module", autouse=True)
def dagster_home(tmp_path_factory: pytest.TempPathFactory):
    """A Dagster instance of this module's own, so tests can read the runs' events afterwards."""
    home = tmp_path_factory.mktemp("dagster_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def demo_run(small_demo: Path):
    """The small demo materialized once with the multiprocess executor."""
    summary, published = run_pipeline(small_demo)
    return load_config(small_demo), summary, published


def test_definitions_load_with_groups_checks_and_the_catalog_downstream_of_everything(small_demo: Path) -> None:
    defs = build_definitions(small_demo)
    graph = defs.resolve_asset_graph()
    ingest_keys = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "ingest"}
    assert set(INGESTED) | {"quarantine_summary"} <= ingest_keys
    check_keys = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("hospitalizations", "rows_reconcile") in check_keys
    assert any(a == "census" and n.startswith("contract_") for a, n in check_keys)
    catalog = graph.get(dg.AssetKey("catalog"))
    assert catalog.group_name == "publish"
    downstream = {dg.AssetKey("reports")}  # the regional reports read the published catalog
    assert set(catalog.child_keys) == downstream
    assert set(catalog.parent_keys) == graph.get_all_asset_keys() - {catalog.key} - downstream, "every other asset"


def test_multiprocess_run_stores_tables_and_publishes_catalog(demo_run) -> None:
    cfg, summary, published = demo_run
    assert summary.checks, "asset checks ran"
    assert summary.failed_checks == []
    warehouse = warehouse_for(cfg)
    for table in INGESTED + ["quarantine", "quarantine_summary"]:
        assert warehouse.exists(table), table
    with warehouse.read_catalog() as cat:
        kinds = dict(cat.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        assert {"regions", "census", "pollutant_readings", "quarantine_summary"} <= set(kinds)
        assert set(kinds.values()) == {"BASE TABLE"}, "a snapshot: rows in the file, no views over Parquet paths"
        private = {"hospitalizations", "quarantine", "region_period_outcomes"}
        assert not private & set(kinds), "private tables stay out of the catalog"
        info = cat.execute("SELECT synthetic, notice FROM catalog_info").fetchone()
        assert info[0] == "true" and "SYNTHETIC" in info[1]
    assert set(published.rows) | {"catalog_info"} == set(kinds), "the run reports what the catalog holds"


def _materializations(asset: str) -> list:
    with dg.DagsterInstance.get() as instance:
        return instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records


def test_catalog_asset_reports_the_tables_rows_and_time_it_published(demo_run) -> None:
    cfg, summary, published = demo_run
    [record] = [r for r in _materializations("catalog") if r.run_id == summary.run_id]
    metadata = record.asset_materialization.metadata
    with warehouse_for(cfg).read_catalog() as cat:
        counts = {t: cat.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in metadata["tables"].value}
        published_at = cat.execute("SELECT published_at FROM catalog_info").fetchone()[0]
    assert counts == metadata["tables"].value == dict(published.rows)
    assert metadata["catalog_info"].value["published_at"] == published_at == published.info["published_at"]


def test_each_period_partition_reports_its_own_rows_and_period(demo_run) -> None:
    """One run materializes every year; each year's partition shows that year's figures, not the run's."""
    cfg, summary, _ = demo_run
    records = [r for r in _materializations("region_period_outcomes") if r.run_id == summary.run_id]
    with warehouse_for(cfg).connect(["region_period_outcomes"]) as con:
        stored = dict(con.execute("SELECT period::VARCHAR, count(*) FROM region_period_outcomes GROUP BY 1").fetchall())
    assert sorted(r.partition_key for r in records) == cfg.periods.keys
    for record in records:
        metadata = record.asset_materialization.metadata
        assert metadata["dagster/row_count"].value == stored[record.partition_key] < sum(stored.values())
        assert metadata["period"].value == int(record.partition_key)


def test_every_row_read_is_accounted_for(demo_run) -> None:
    cfg, _, _ = demo_run
    with warehouse_for(cfg).connect(["hospitalizations", "quarantine"]) as con:
        accepted = con.execute("SELECT count(*) FROM hospitalizations").fetchone()[0]
        quarantined = con.execute("SELECT count(*) FROM quarantine WHERE source = 'hospitalizations'").fetchone()[0]
    file_rows = duckdb.sql(f"SELECT count(*) FROM '{cfg.sources.hospitalizations.path}'").fetchall()[0][0]
    assert accepted + quarantined == file_rows
    assert quarantined > 0, "the demo injects defective records; they must be quarantined, not dropped"


def _truth(cfg) -> pd.DataFrame:
    """The demo's per region x year truth table (true relative risks and exposures)."""
    truth = json.loads((cfg.config_path.parent / "truth.json").read_text(encoding="utf-8"))
    return pd.read_parquet(cfg.config_path.parent / truth["region_period_truth"])


def test_outcome_cases_reconcile_with_accepted_records(demo_run) -> None:
    cfg, _, _ = demo_run
    with warehouse_for(cfg).connect(["hospitalizations", "region_period_outcomes"]) as con:
        by_records = con.execute(
            "SELECT year(admission_date) AS period, count(*) FROM hospitalizations "
            "WHERE icd10 >= 'E10' AND icd10 < 'E15' GROUP BY 1 ORDER BY 1"
        ).fetchall()
        by_table = con.execute(
            "SELECT period, sum(cases), round(sum(expected_cases), 6) FROM region_period_outcomes GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert [(p, n) for p, n, _ in by_table] == by_records
    assert all(abs(n - e) < 1e-6 * n for _, n, e in by_table), "indirect standardisation: expected sums to observed"


def test_shr_intervals_cover_the_demo_true_relative_risks_at_about_the_nominal_rate(demo_run) -> None:
    cfg, _, _ = demo_run
    with warehouse_for(cfg).connect(["region_period_outcomes"]) as con:
        shr = con.execute("SELECT region_id, period AS year, shr_lower, shr_upper FROM region_period_outcomes").df()
    merged = shr.merge(_truth(cfg), on=["region_id", "year"], validate="one_to_one")
    assert len(merged) == len(shr) > 300
    covered = (merged["shr_lower"] <= merged["true_relative_risk"]) & (merged["true_relative_risk"] <= merged["shr_upper"])
    assert 0.90 <= covered.mean() <= 0.995, f"95% intervals covered {covered.mean():.3f} of the true relative risks"


def test_pm25_exposure_tracks_the_demo_true_field(demo_run) -> None:
    cfg, _, _ = demo_run
    with warehouse_for(cfg).connect(["pollutant_exposure"]) as con:
        pm = con.execute(
            "SELECT region_id, period AS year, mean FROM pollutant_exposure "
            "WHERE pollutant = 'PM25' AND assignment_method <> 'none'"
        ).df()
    merged = pm.merge(_truth(cfg), on=["region_id", "year"])
    assert len(merged) >= 50, "regions with a station within the IDW radius"
    assert merged["mean"].astype(float).corr(merged["exposure_PM25"]) > 0.8


def test_example_queries_run_on_the_published_catalog(demo_run) -> None:
    cfg, _, _ = demo_run
    queries = sorted((resource_dir("sql") / "queries").glob("*.sql"))
    assert queries
    with warehouse_for(cfg).read_catalog() as cat:
        for path in queries:
            cat.execute(path.read_text(encoding="utf-8")).fetchall()


RUN_STAMPED = "reports"  # its rows hash HTML reports that name their run and the catalog's publish time (provenance)


def _table_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.parquet"))}


def _unstamped(hashes: dict[str, str]) -> dict[str, str]:
    """Every table's hashes but those of the run-stamped one (tests/test_executors.py compares it without stamps)."""
    return {path: h for path, h in hashes.items() if Path(path).parts[0] != RUN_STAMPED}


def test_reader_holding_catalog_open_neither_blocks_nor_breaks_a_run(demo_run) -> None:
    """Also: re-running on the same inputs gives byte-identical tables."""
    cfg, _, _ = demo_run
    before = _table_hashes(cfg.warehouse.root / "tables")
    reader = warehouse_for(cfg).read_catalog()
    results: list[int] = []
    stop = threading.Event()

    def keep_querying() -> None:
        while not stop.is_set():
            results.append(reader.execute("SELECT count(*) FROM census").fetchone()[0])

    thread = threading.Thread(target=keep_querying)
    thread.start()
    try:
        summary, published = run_pipeline(cfg.config_path)
    finally:
        stop.set()
        thread.join()
        reader.close()
    assert summary.failed_checks == []
    assert results and min(results) > 0, "the reader kept getting answers during the run"
    with warehouse_for(cfg).read_catalog() as fresh:
        assert fresh.execute("SELECT count(*) FROM census").fetchone()[0] == results[-1]
    after = _table_hashes(cfg.warehouse.root / "tables")
    assert sorted(after) == sorted(before) and any(Path(p).parts[0] == RUN_STAMPED for p in after)
    assert _unstamped(after) == _unstamped(before), "same inputs must give the same tables"


def _relayout(small_demo: Path, out: Path) -> Path:
    """The demo's inputs with other column names, CSV instead of Parquet, and no ICU column."""
    cfg = load_config(small_demo)
    src = cfg.sources
    out.mkdir()
    hosp_cols = src.hospitalizations.columns
    renamed = {canon: f"col_{canon}" for canon in hosp_cols if canon != "icu"}
    select = ", ".join(f'"{hosp_cols[c]}" AS "{new}"' for c, new in renamed.items())
    duckdb.sql(f"COPY (SELECT {select} FROM '{src.hospitalizations.path}') TO '{out / 'records.csv'}' (HEADER)")
    readings = duckdb.sql(f"SELECT * FROM '{src.pollutant_readings.path}'")
    readings.write_csv(str(out / "readings.csv"))
    new_sources = src.model_copy(
        update={
            "hospitalizations": src.hospitalizations.model_copy(
                update={
                    "path": out / "records.csv",
                    "format": None,
                    "columns": renamed,
                    "recode": {k: v for k, v in src.hospitalizations.recode.items() if k != "icu"},
                }
            ),
            "pollutant_readings": src.pollutant_readings.model_copy(update={"path": out / "readings.csv", "format": None}),
        }
    )
    relaid = without_imaging_or_pdf(
        cfg.model_copy(update={"sources": new_sources, "warehouse": cfg.warehouse.model_copy(update={"root": out / "wh"})})
    )
    path = out / "config.yaml"
    dump_config(relaid, path)
    return path


def test_cli_runs_a_differently_laid_out_data_set(small_demo: Path, tmp_path: Path) -> None:
    config = _relayout(small_demo, tmp_path / "other")
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 0, result.output
    cfg = load_config(config)
    with warehouse_for(cfg).connect(["hospitalizations"]) as con:
        n, icu_known = con.execute("SELECT count(*), count(icu) FROM hospitalizations").fetchone()
    assert n > 0 and icu_known == 0, "no ICU column in the source: the staged column is NULL, not invented"


def test_cli_reports_bad_config_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: {regions: {path: r.gpkg}}\nperiods: {start: 2020, end: 2019}\n")
    result = CliRunner().invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 2
    assert "periods.end (2019) is before periods.start (2020)" in result.output


def _with_own_warehouse(small_demo: Path, tmp_path: Path) -> Path:
    """The demo's config, writing to a warehouse of its own under tmp_path."""
    cfg = load_config(small_demo)
    moved = cfg.model_copy(update={"warehouse": cfg.warehouse.model_copy(update={"root": tmp_path / "wh"})})
    config = tmp_path / "config.yaml"
    dump_config(moved, config)
    return config


def test_ingest_group_materializes_in_process_against_a_real_warehouse(small_demo: Path, tmp_path: Path) -> None:
    config = _with_own_warehouse(small_demo, tmp_path)
    defs = build_definitions(config)
    job = defs.resolve_job_def("ingest_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance)
    assert result.success
    mats = {
        m.asset_key.to_user_string(): m.metadata
        for m in (e.step_materialization_data.materialization for e in result.get_asset_materialization_events())
    }
    assert mats["census"]["dagster/row_count"].value > 0
    assert "dagster/column_schema" in mats["census"]
    with warehouse_for(load_config(config)).connect(["census"]) as con:
        assert con.execute("SELECT count(*) FROM census").fetchone()[0] == mats["census"]["dagster/row_count"].value


def test_aggregated_counts_without_records_run_end_to_end(small_demo: Path, tmp_path: Path) -> None:
    """Users who only have counts per region and year (with population) get region_period_outcomes too."""
    cfg = load_config(small_demo)
    counts = tmp_path / "counts.csv"
    duckdb.sql(
        f"""
        COPY (
            WITH pop AS (SELECT cve_mun, anio, sum(poblacion) AS pob FROM read_csv('{cfg.sources.census.path}',
                         types = {{'cve_mun': 'VARCHAR'}}) GROUP BY ALL),
                 cases AS (SELECT cve_mun_res AS cve_mun, year(fecha_ingreso) AS anio, count(*) AS casos
                           FROM '{cfg.sources.hospitalizations.path}'
                           WHERE diag_principal >= 'E10' AND diag_principal < 'E15' GROUP BY ALL)
            SELECT pop.cve_mun, pop.anio, coalesce(casos, 0) AS casos, pob FROM pop LEFT JOIN cases USING (cve_mun, anio)
        ) TO '{counts}' (HEADER)
        """
    )
    sources = cfg.sources.model_copy(
        update={
            "hospitalizations": None,
            "census": None,
            "hospitalization_counts": SourceConfig(
                path=counts,
                columns={"region_id": "cve_mun", "period": "anio", "cases": "casos", "population": "pob"},
            ),
        }
    )
    moved = without_imaging_or_pdf(
        cfg.model_copy(update={"sources": sources, "warehouse": cfg.warehouse.model_copy(update={"root": tmp_path / "wh"})})
    )
    config = tmp_path / "counts.yaml"
    dump_config(moved, config)
    summary, published = run_pipeline(config, in_process=True)
    assert summary.failed_checks == []
    assert published.rows["published_outcomes"] > 0
    with warehouse_for(load_config(config)).connect(["region_period_outcomes"]) as con:
        total, expected, std = con.execute(
            "SELECT sum(cases), sum(expected_cases), count(std_rate) FROM region_period_outcomes"
        ).fetchone()
    assert total > 0 and abs(total - expected) < 1e-6 * total
    assert std == 0, "no age strata in aggregated input: no directly standardised rate is invented"


def test_second_run_on_a_locked_warehouse_fails_at_once_naming_the_holder(small_demo: Path, tmp_path: Path) -> None:
    config = _with_own_warehouse(small_demo, tmp_path)
    root = load_config(config).warehouse.root
    started = time.monotonic()
    with WarehouseLock(root) as lock, pytest.raises(WarehouseLockedError, match=f"pid {lock.holder.pid} on host"):
        run_pipeline(config, in_process=True)
    assert time.monotonic() - started < 10
    assert not (root / "tables").exists(), "nothing was written"


def _copy_of_demo_warehouse(cfg, tmp_path: Path, **sources: Path) -> Path:
    """A config over a copy of the demo's warehouse (tables and catalog), with some source files replaced."""
    shutil.copytree(cfg.warehouse.root, tmp_path / "wh", ignore=shutil.ignore_patterns(".epiatlas.lock"))
    replaced = {name: getattr(cfg.sources, name).model_copy(update={"path": path}) for name, path in sources.items()}
    moved = cfg.model_copy(
        update={"sources": cfg.sources.model_copy(update=replaced), "warehouse": cfg.warehouse.model_copy(update={"root": tmp_path / "wh"})}
    )
    config = tmp_path / "config.yaml"
    dump_config(moved, config)
    return config


def _census_sum(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT sum(population) FROM census").fetchone()[0]


def test_killed_run_is_marked_failed_and_a_failed_run_publishes_nothing(demo_run, tmp_path: Path) -> None:
    """A run killed mid-way, then a run that rewrites census but fails on readings: the old catalog stays whole."""
    cfg, _, _ = demo_run
    census, readings = tmp_path / "census.csv", tmp_path / "readings.parquet"
    duckdb.sql(f"COPY (SELECT * REPLACE (poblacion::BIGINT + 1 AS poblacion) FROM read_csv('{cfg.sources.census.path}', "
               f"all_varchar = true)) TO '{census}' (HEADER)")
    duckdb.sql(f"COPY (SELECT * REPLACE (-1.0 AS valor) FROM '{cfg.sources.pollutant_readings.path}') TO '{readings}'")
    config = _copy_of_demo_warehouse(cfg, tmp_path, census=census, pollutant_readings=readings)
    warehouse = warehouse_for(load_config(config))
    with warehouse.read_catalog() as cat:
        old_census, old_info = _census_sum(cat), cat.execute("SELECT published_at FROM catalog_info").fetchone()[0]

    # Killed: `kill -9` on a CLI run once Dagster has recorded it as started.
    killed = subprocess.Popen([sys.executable, "-m", "epiatlas.cli.main", "run", "--config", str(config), "--in-process"],
                              env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    runs_filter = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={WAREHOUSE_TAG: str(warehouse.root)})
    with dg.DagsterInstance.get() as instance:
        deadline = time.monotonic() + 120
        while not instance.get_runs(runs_filter) and time.monotonic() < deadline:
            time.sleep(0.5)
        killed.kill()
        killed.wait()
        [run] = instance.get_runs(runs_filter)  # a killed run is left STARTED until the next run
    leftovers = [warehouse.table_dir("census") / ".data.parquet.killed.tmp", warehouse.root / ".catalog.duckdb.killed.tmp.wal"]
    for path in leftovers:
        path.write_bytes(b"partial")

    with pytest.raises(PipelineRunError):
        run_pipeline(config, in_process=True)
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert warehouse.temporary_files() == [] and not any(p.exists() for p in leftovers)
    with warehouse.connect(["census"]) as con:
        assert _census_sum(con) == old_census + con.execute("SELECT count(*) FROM census").fetchone()[0], "census was rewritten"
    with warehouse.read_catalog() as cat:
        assert _census_sum(cat) == old_census, "the catalog still shows the previous run's rows"
        assert cat.execute("SELECT published_at FROM catalog_info").fetchone()[0] == old_info
