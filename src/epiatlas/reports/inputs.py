"""What a report reads, from the published catalog only: the mart, boundaries, model and imaging summaries.

Reading nothing but `Warehouse.read_catalog()` keeps every report under the catalog's disclosure control: a
suppressed cell is blank in `region_profile` before a report ever sees it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from epiatlas.reports.errors import ReportError

if TYPE_CHECKING:
    from epiatlas.reports.figures import RegionShapes

REQUIRED = ("region_profile", "regions", "catalog_info")
NATIONAL = "national"


@dataclass(frozen=True)
class CatalogData:
    """The public tables a report draws on, read once per run."""

    profile: pd.DataFrame
    regions: pd.DataFrame  # region_id, name, parent_id, parent_name, geometry (WKB)
    info: dict[str, str]
    evaluation: pd.DataFrame | None = None  # cxr_evaluation
    overlays: tuple[tuple[str, str, bytes], ...] = ()  # Grad-CAM overlays from cxr_figures: name, description, png
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.info.get("synthetic") == "true"

    @property
    def periods(self) -> list[int]:
        return sorted(int(p) for p in self.profile["period"].unique())

    @cached_property
    def shapes(self) -> RegionShapes:
        """Every region's simplified boundary as matplotlib paths, built once for all the maps drawn from this data."""
        from epiatlas.reports.figures import RegionShapes

        return RegionShapes.from_wkb(self.regions)

    @property
    def threshold(self) -> int:
        return int(self.profile["suppression_threshold"].max())

    def shortcut(self) -> bool | None:
        """The imaging model's shortcut verdict (cxr_evaluation metric shortcut_warning), None without imaging."""
        if self.evaluation is None:
            return None
        flag = self.evaluation[self.evaluation["metric"] == "shortcut_warning"]["estimate"]
        return bool(flag.iloc[0] > 0) if len(flag) else None

    def period_rows(self, period: int) -> pd.DataFrame:
        """The mart's rows of one period; ReportError naming the periods published when it has none."""
        rows = self.profile[self.profile["period"] == period]
        if rows.empty:
            raise ReportError(f"period {period} is not in the published region_profile (periods: {self.periods}); "
                              "materialize that period and publish the catalog first")  # fmt: skip
        return rows


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def read_catalog_data(con: duckdb.DuckDBPyConnection) -> CatalogData:
    """Read the report inputs from an analyst connection to the published catalog."""
    tables = _tables(con)
    if missing := [t for t in REQUIRED if t not in tables]:
        raise ReportError(f"the published catalog lacks {', '.join(missing)}: run the pipeline (`epiatlas run "
                          "--config FILE`), which builds region_profile and publishes it, before writing "
                          "reports")  # fmt: skip
    profile = con.execute("SELECT * FROM region_profile ORDER BY region_id, period").df()
    regions = con.execute(
        "SELECT region_id, name, parent_id, parent_name, geometry FROM regions ORDER BY region_id"
    ).df()
    info = {k: str(v) for k, v in con.execute("SELECT * FROM catalog_info").df().iloc[0].items()}
    evaluation = con.table("cxr_evaluation").df() if "cxr_evaluation" in tables else None
    overlays = ()
    if "cxr_figures" in tables:
        rows = con.execute(
            "SELECT name, description, png FROM cxr_figures WHERE name LIKE 'cxr_overlay_%' ORDER BY name"
        )
        overlays = tuple((n, d, bytes(p)) for n, d, p in rows.fetchall())
    return CatalogData(profile, regions, info, evaluation, overlays, _versions(con, tables, profile, info))


def _versions(
    con: duckdb.DuckDBPyConnection, tables: set[str], profile: pd.DataFrame, info: dict[str, str]
) -> dict[str, str]:
    """Data and model versions for the provenance section."""
    rows = pd.util.hash_pandas_object(profile.drop(columns=["index_scores", "index_quintiles"]), index=False)
    versions = {
        "catalog": f"{info.get('name', '')}, published {info.get('published_at', 'unknown')}",
        "region_profile content hash": hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()[:16],
    }
    if "glm_fit" in tables:
        fits = con.execute("SELECT outcome, family, alpha FROM glm_fit ORDER BY outcome").fetchall()
        for outcome, family, alpha in fits:
            versions[f"GLM ({outcome})"] = f"{family}, elastic-net penalty {alpha:.3g}"
    if "cxr_model" in tables:
        for version, arch, device in con.execute("SELECT model_version, arch, device FROM cxr_model").fetchall():
            versions["chest X-ray classifier"] = f"{arch}, model_version {version} (trained on {device})"
    return versions
