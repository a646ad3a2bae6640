"""Failures that say why: through the CLI, the last line names the source, the file, the rule and what to do."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._utils.error import SerializableErrorInfo
from shapely.geometry import LineString
from typer.testing import CliRunner, Result

from epiatlas.analyses import analysis_plan
from epiatlas.cli.main import app
from epiatlas.warehouse import Warehouse
from orchestration.runner import failure_cause
from tests.ingest_fixtures import square
from tests.preflight_fixtures import COUNTS, tiny_project


def run_cli(*args: str) -> Result:
    """Invoke the CLI; it must fail with exit code 2 and no traceback."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    return result


def last_line(result: Result) -> str:
    return result.output.strip().splitlines()[-1]


def counts_file(project: Path) -> Path:
    return project / "data" / "counts.csv"


def _missing_column(path: Path) -> None:
    path.write_text(COUNTS.replace("cases", "casos"))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _header_only(path: Path) -> None:
    path.write_text(COUNTS.splitlines()[0] + "\n")


def _ragged_last_line(path: Path) -> None:
    path.write_text(COUNTS + "R1,2020,1")


def _open_quote(path: Path) -> None:
    path.write_text(COUNTS + 'R1,"2020,1,1000\n')


def _binary(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04\x00\x00binary\x00zip" * 50)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(("breaks", "expected"), [
    (_missing_column, [r"missing required column\(s\) cases", r"Rule: every non-optional", "under 'columns'"]),
    (_empty, [r"empty \(0 bytes\)", "rule: a source needs"]),
    (_header_only, ["no data rows, only a header", "rule: a source needs at least one row"]),
    (_ragged_last_line, [r"line 6 \(data row 5\) is malformed: 3 fields where the header has 4", "rule: csv format",
                         "re-export it or fix that line"]),
    (_open_quote, [r"line 6 \(data row 5\) is malformed: .*quote", "rule: csv format"]),
    (_binary, ["is a binary file, not CSV text", "rule: csv format", "Export the data as CSV"]),
    (_directory, ["is a directory, not a file", "rule: sources.<name>.path names a file"]),
], ids=["missing_column", "empty", "header_only", "truncated_ragged", "truncated_open_quote", "binary", "directory"])
def test_bad_source_file_fails_run_and_check_config_naming_source_file_rule(tmp_path: Path, breaks, expected) -> None:
    config = tiny_project(tmp_path)
    breaks(counts_file(tmp_path))
    for command in ("run", "check-config"):
        line = last_line(run_cli(command, "--config", str(config), *(["--in-process"] if command == "run" else [])))
        assert line.startswith("sources.hospitalization_counts: ") and "counts.csv" in line, line
        for pattern in expected:
            assert re.search(pattern, line), (pattern, line)
    assert not (tmp_path / "warehouse" / "tables").exists(), "nothing was ingested"


def test_permission_denied_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_project(tmp_path)
    denied = counts_file(tmp_path)
    real_open = Path.open

    def guarded(self: Path, *args, **kwargs):  # root reads any file, so the denial is simulated
        if self == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)
    line = last_line(run_cli("run", "--config", str(config), "--in-process"))
    assert line.startswith("sources.hospitalization_counts: ") and "counts.csv: permission denied" in line
    assert "rule: input files must be readable" in line and "chmod" in line


def test_bad_case_definition_is_refused_before_the_run(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, outcomes={"case_icd10": ["E10-E14", "diabetes"]})
    line = last_line(run_cli("run", "--config", str(config), "--in-process"))
    assert line.startswith("outcomes.case_icd10: ") and "'diabetes' is not an ICD-10 code" in line
    assert "expected a letter, two digits" in line


def test_invalid_config_value_is_named_with_its_key(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, outcomes={"suppression_threshold": True})
    line = last_line(run_cli("check-config", "--config", str(config)))
    assert line == "outcomes.suppression_threshold: Input should be a valid integer (given: True)"


@pytest.mark.slow
def test_full_disk_during_a_write_ends_with_a_disk_full_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_project(tmp_path)

    def no_space(self: Warehouse, con, table: str, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.table_dir(table) / ".data.parquet.tmp"))

    monkeypatch.setattr(Warehouse, "write_table", no_space)
    line = last_line(run_cli("run", "--config", str(config), "--in-process"))
    assert "DiskFullError" in line and "no space left on the device" in line and ".data.parquet.tmp" in line
    assert "Free space or move warehouse.root" in line
    assert "Error occurred while executing" not in line


@pytest.mark.slow
def test_error_inside_a_step_is_the_last_line_not_dagsters_wrapper(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_project(tmp_path)
    _missing_column(counts_file(tmp_path))
    monkeypatch.setattr("orchestration.runner.require_preflight", analysis_plan)  # skip the checks: the step meets it
    result = run_cli("run", "--config", str(config), "--in-process")
    line = last_line(result)
    assert line.startswith("hospitalization_counts: SchemaMismatchError: sources.hospitalization_counts: ")
    assert "counts.csv: missing required column(s) cases" in line and "Rule:" in line
    assert "Error occurred while executing" not in result.output.splitlines()[-1]


@pytest.mark.slow
def test_losing_a_region_fails_the_run_naming_the_region_row(tmp_path: Path) -> None:
    import geopandas as gpd

    config = tiny_project(tmp_path)
    gpd.GeoDataFrame({"CVE": ["R1", "R2"]}, geometry=[square(0, 0), LineString([(1, 0), (2, 1)])],
                     crs="EPSG:4326").to_file(tmp_path / "data" / "regions.geojson")
    result = run_cli("run", "--config", str(config), "--in-process")
    line = last_line(result)
    assert line.startswith("regions: blocking check failed: no_region_lost: regions: 1 of 2 boundary rows rejected")
    assert "regions: blocking check failed: rows_reconcile: regions: 2 read = 1 accepted + 1 quarantined" in \
        result.output, "the row gate (5%) fails too, on its own line"
    assert "regions.geojson row 2" in line and "LineString is not a polygon" in line
    assert "quality.max_region_reject_share" in line


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device", "/wh/.catalog.duckdb.1234.tmp"),
    duckdb.IOException('IO Error: Could not write file "/wh/.catalog.duckdb.1234.tmp": No space left on device'),
], ids=["os_error", "duckdb_io_error"])
def test_full_disk_during_publish_is_a_disk_full_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       error: Exception) -> None:
    config = tiny_project(tmp_path)

    def no_space(cfg):
        raise error

    monkeypatch.setattr("epiatlas.publish.publish_catalog", no_space)
    line = last_line(run_cli("publish", "--config", str(config)))
    assert line.startswith("error (DiskFullError): epiatlas publish") and "no space left on the device" in line
    assert "Free space or move warehouse.root" in line


def test_other_os_errors_become_storage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_project(tmp_path)

    def read_only(cfg):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "warehouse" / "catalog.duckdb"))

    monkeypatch.setattr("epiatlas.publish.publish_catalog", read_only)
    line = last_line(run_cli("publish", "--config", str(config)))
    assert line.startswith("error (StorageError): epiatlas publish: ") and "Read-only file system" in line
    assert "Fix the permissions, or set warehouse.root to a writable folder" in line


def wrapped(qualified_name: str, message: str) -> SerializableErrorInfo:
    """A step failure as Dagster records it: its wrapper error caused by `<qualified_name>: <message>`."""
    cause = SerializableErrorInfo(f"{qualified_name}: {message}\n", [], qualified_name.split(".")[-1])
    return SerializableErrorInfo('Error occurred while executing op "x":\n', [], "DagsterExecutionStepExecutionError",
                                 cause=cause)


@pytest.mark.parametrize(("error", "expected"), [
    (wrapped("epiatlas.errors.SchemaMismatchError", "sources.census: c.csv: missing column\n (rule: ...)"),
     "census: SchemaMismatchError: sources.census: c.csv: missing column (rule: ...)"),
    (wrapped("OSError", "[Errno 28] No space left on device: '/wh/tables/census/.data.parquet.tmp'"),
     "census: DiskFullError: step census: /wh/tables/census/.data.parquet.tmp: no space left on the device"),
    (wrapped("duckdb.duckdb.IOException", 'IO Error: Could not write file "/wh/x.tmp": No space left on device'),
     "census: DiskFullError: step census: no space left on the device"),
    (wrapped("PermissionError", "[Errno 13] Permission denied: '/wh/tables'"),
     "census: StorageError: step census: /wh/tables: Permission denied"),
    (wrapped("KeyError", "'surprise'"), "census: KeyError: 'surprise'"),
], ids=["epiatlas_error", "os_disk_full", "duckdb_disk_full", "permission", "other"])
def test_failure_cause_is_the_error_behind_dagsters_wrapper(error: SerializableErrorInfo, expected: str) -> None:
    cause = failure_cause("census", error, [])
    assert cause.startswith(expected), cause
    assert "Error occurred while executing" not in cause


def test_failure_cause_of_a_failed_blocking_check_is_its_description() -> None:
    checks = [dg.AssetCheckEvaluation(asset_key=dg.AssetKey("regions"), check_name=name, passed=False,
                                      description=text)
              for name, text in [("rows_reconcile", "2 read = 1 accepted + 1 quarantined"),
                                 ("no_region_lost", "1 of 2 boundary rows rejected")]]
    error = wrapped("dagster._core.errors.DagsterAssetCheckFailedError", "1 blocking check failed")
    assert failure_cause("regions", error, checks).splitlines() == [
        "regions: blocking check failed: rows_reconcile: 2 read = 1 accepted + 1 quarantined",
        "regions: blocking check failed: no_region_lost: 1 of 2 boundary rows rejected",
    ]
