"""The models group end to end on the small demo: published tables, checks, figures, no revealing residuals."""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from epiatlas.config import load_config
from epiatlas.publish import warehouse_for

pytestmark = pytest.mark.slow

MODEL_TABLES = [
    "socioeconomic_indices", "factor_loadings", "factor_diagnostics", "glm_coefficients", "glm_fit",
    "model_predictions", "gbm_shap", "region_drivers", "gbm_partial_dependence", "model_cv_comparison",
    "model_figures",
]  # fmt: skip


@pytest.fixture(scope="module")
def catalog(small_demo: Path, small_demo_run):
    """The whole pipeline run (in process) on the small demo; its published catalog."""
    cfg = load_config(small_demo)
    summary, _ = small_demo_run
    assert summary.failed_checks == [], summary.failed_checks
    with warehouse_for(cfg).read_catalog() as con:
        yield con


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_every_model_table_is_published(catalog: duckdb.DuckDBPyConnection) -> None:
    tables = {r[0] for r in _rows(catalog, "SELECT table_name FROM information_schema.tables")}
    assert set(MODEL_TABLES) <= tables
    for table in MODEL_TABLES:
        assert _rows(catalog, f"SELECT count(*) FROM {table}")[0][0] > 0, table


def test_no_residual_where_the_published_count_is_hidden(catalog: duckdb.DuckDBPyConnection) -> None:
    shown_where_hidden = _rows(
        catalog,
        "SELECT count(*) FROM model_predictions m JOIN published_outcomes p USING (region_id, period) "
        "WHERE m.outcome = 'cases' AND p.cases IS NULL AND m.residual IS NOT NULL",
    )[0][0]
    hidden = _rows(catalog, "SELECT count(*) FROM published_outcomes WHERE cases IS NULL")[0][0]
    assert hidden > 0, "the small demo has suppressed cells, so the check has something to check"
    assert shown_where_hidden == 0


def test_drivers_are_the_largest_shap_values(catalog: duckdb.DuckDBPyConnection) -> None:
    mismatches = _rows(
        catalog,
        "WITH ranked AS (SELECT region_id, period, feature, row_number() OVER "
        "(PARTITION BY region_id, period ORDER BY abs(shap_value) DESC, feature) AS r FROM gbm_shap) "
        "SELECT count(*) FROM region_drivers d JOIN ranked k ON d.region_id = k.region_id AND d.period = k.period "
        "AND d.rank = k.r WHERE d.feature <> k.feature",
    )[0][0]
    assert mismatches == 0


def test_deprivation_raises_the_rate_as_planted(catalog: duckdb.DuckDBPyConnection) -> None:
    """The demo's marginalization factor (illiteracy, no primary school) has a planted positive effect."""
    (feature,) = _rows(catalog, "SELECT DISTINCT feature FROM gbm_partial_dependence WHERE feature LIKE '%illiteracy%'")[0]
    low, high = _rows(
        catalog,
        f"SELECT arg_min(rate_ratio, grid_value), arg_max(rate_ratio, grid_value) FROM gbm_partial_dependence "
        f"WHERE feature = '{feature}'",
    )[0]
    assert high > low
    (ratio,) = _rows(catalog, f"SELECT rate_ratio FROM glm_coefficients WHERE outcome = 'cases' AND term = '{feature}'")[0]
    assert ratio is None or ratio > 1.0  # None: not selected (small demo), never a wrong sign


def test_figures_are_real_pngs(catalog: duckdb.DuckDBPyConnection) -> None:
    figures = _rows(catalog, "SELECT name, png FROM model_figures ORDER BY name")
    assert {"glm_forest", "gbm_pdp_ice", "gbm_shap_beeswarm", "map_shr", "map_composite_index"} <= {n for n, _ in figures}
    for _, png in figures:
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.width > 300
