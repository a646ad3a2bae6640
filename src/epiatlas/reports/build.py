"""Regional reports: one self-contained HTML file per region (or parent region) and period, plus a national summary.

Everything shown comes from `CatalogData` (the published catalog); figures are PNG data URIs, so a report opens
offline and makes no request. Reports are stored as public, content-hashed artifacts and listed in `reports`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from epiatlas.artifacts import Artifact, ArtifactStore
from epiatlas.reports import figures
from epiatlas.reports.errors import ReportError
from epiatlas.reports.html import Cell, cell, data_uri, hidden_label, render
from epiatlas.reports.inputs import NATIONAL, CatalogData
from epiatlas.reports.profile import N_DRIVERS

Level = Literal["region", "parent"]
FigureCache = dict[tuple[str, str], str]  # (figure, region or subject) -> data URI, for figures spanning all periods
OVERLAYS_SHOWN = 2
DETAILED = 3  # regions of a parent report drawn one by one (the highest SHR); its tables list them all


@dataclass(frozen=True)
class Subject:
    """What one report covers: a region, or a parent region and its regions."""

    key: str
    level: Level
    title: str
    region_ids: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """One rendered report."""

    subject: str  # region_id, parent_id or 'national'
    level: str  # region, parent or national
    period: int
    html: str

    @property
    def artifact_name(self) -> str:
        """A valid artifact name: report_<subject>_<period>, the subject lower-cased with other characters as _."""
        return f"report_{re.sub(r'[^a-z0-9]', '_', self.subject.lower())}_{self.period}"


def subjects(data: CatalogData, level: Level, chosen: Sequence[str] | None = None) -> list[Subject]:
    """The regions (or parent regions) to report on: `chosen`, or all; ReportError naming an unknown one."""
    regions = data.regions
    if level == "region":
        found = [Subject(r.region_id, level, f"{r.name or r.region_id} ({r.parent_name or 'no parent'})",
                         (r.region_id,)) for r in regions.itertuples()]  # fmt: skip
    else:
        with_parent = regions.dropna(subset=["parent_id"])
        found = [Subject(pid, level, str(g["parent_name"].iloc[0] or pid), tuple(g["region_id"]))
                 for pid, g in with_parent.groupby("parent_id", sort=True)]  # fmt: skip
    if chosen is None:
        return found
    by_key = {s.key: s for s in found}
    if unknown := [k for k in chosen if k not in by_key]:
        raise ReportError(f"reports.regions / --region names {unknown}, which are not {level} ids of the published "
                          f"regions table (e.g. {list(by_key)[:3]}); use region_id at level region, parent_id at "
                          "level parent")  # fmt: skip
    return [by_key[k] for k in chosen]


def _common(data: CatalogData, title: str, period: int, run_id: str) -> dict[str, object]:
    return {"title": title, "period": period, "synthetic": data.synthetic, "notice": data.info.get("notice", ""),
            "threshold": data.threshold, "versions": data.versions, "run_id": run_id}  # fmt: skip


def _outcome_cells(row: pd.Series, threshold: int) -> list[Cell]:
    hidden = hidden_label(row["suppression"], threshold)
    return [
        cell(row["population"], ",d", None),
        cell(row["cases"], ",d", hidden),
        cell(row["expected_cases"], ".1f", hidden),
        Cell(hidden, True) if hidden else Cell(_ci(row)),
        cell(row["crude_rate"], ".1f", hidden),
        cell(row["std_rate"], ".1f", hidden),
        cell(row["glm_fitted"], ".1f", None),
        cell(row["glm_residual"], ".2f", hidden),
    ]


def _imaging_rows(rows: pd.DataFrame, threshold: int) -> list[dict[str, object]]:
    """Imaging cells of the rows that have images (suppressed imaging cells shown as suppressed)."""
    out = []
    for _, r in rows[rows["imaging_suppressed"].notna()].iterrows():
        hidden = hidden_label(bool(r["imaging_suppressed"]), threshold)
        columns = [("n_images", ",d"), *((c, ".0%") for c in ("share_normal", "share_bacterial", "share_viral",
                   "share_covid19", "mean_lung_share", "share_off_lung"))]  # fmt: skip
        cells = [cell(r[c], f, hidden) for c, f in columns]
        out.append({"name": f"{r['name']} ({r['region_id']})", "cells": cells})
    return out


def _imaging_context(data: CatalogData, rows: pd.DataFrame) -> dict[str, object]:
    if data.evaluation is None:
        return {"imaging": None, "shortcut": False, "overlays": []}
    overlays = [(n, d, data_uri(p)) for n, d, p in data.overlays[:OVERLAYS_SHOWN]]
    return {"imaging": _imaging_rows(rows, data.threshold), "shortcut": bool(data.shortcut()), "overlays": overlays}


def _ci(row: pd.Series) -> str:
    """SHR (lower-upper), or "not available"."""
    if pd.isna(row["shr"]):
        return "not available"
    return f"{row['shr']:.2f} ({row['shr_lower']:.2f}-{row['shr_upper']:.2f})"


def _cached(cache: FigureCache, key: tuple[str, str], draw: Callable[[], bytes]) -> str:
    """The data URI of a figure that every period's report shows alike, drawn once per run."""
    if key not in cache:
        cache[key] = data_uri(draw())
    return cache[key]


def _driver_figures(rows: pd.DataFrame, names: dict[str, str]) -> list[tuple[str, str]]:
    """One SHAP bar chart per modelled region: its ranked drivers and their signed contributions."""
    out = []
    for _, r in rows.dropna(subset=["driver_1"]).iterrows():
        ranks = [k for k in range(1, N_DRIVERS + 1) if not pd.isna(r[f"driver_{k}"])]
        png = figures.drivers([r[f"driver_{k}"] for k in ranks], [float(r[f"driver_{k}_shap"]) for k in ranks],
                              f"Drivers: {names[r['region_id']]}")  # fmt: skip
        out.append((names[r["region_id"]], data_uri(png)))
    return out


def _pm25_figures(history: pd.DataFrame, names: dict[str, str], cache: FigureCache) -> list[tuple[str, str]]:
    """PM2.5 per period against the guideline, for each region with an assigned value."""
    return [
        (names[rid], _cached(cache, ("pm25", rid), lambda g=g, rid=rid: figures.pm25(
            g, float(g["pm25_guideline"].dropna().iloc[0]), f"PM2.5: {names[rid]}")))
        for rid, g in history.groupby("region_id")
        if g["pm25_mean"].notna().any()
    ]


def _trend_figures(history: pd.DataFrame, names: dict[str, str], cache: FigureCache) -> list[tuple[str, str]]:
    """SHR with CI per period, one figure per region."""
    return [(names[rid], _cached(cache, ("trend", rid), lambda g=g, rid=rid: figures.trend(
             g, f"SHR over periods: {names[rid]}"))) for rid, g in history.groupby("region_id")]  # fmt: skip


def _index_rows(rows: pd.DataFrame, names: dict[str, str]) -> list[dict[str, object]]:
    """Every index's score and quintile per region."""
    out = []
    for _, r in rows.iterrows():
        if not isinstance(r["index_scores"], dict):
            continue
        for index, score in sorted(r["index_scores"].items()):
            quintile = r["index_quintiles"].get(index)
            out.append({"name": names[r["region_id"]], "index": index,
                        "score": "not available" if score is None else f"{score:.2f}",
                        "quintile": "not available" if quintile is None else quintile})  # fmt: skip
    return out


def _detailed(mine: pd.DataFrame, level: str) -> list[str]:
    """Regions drawn one by one: every region of a region report; at parent level the `DETAILED` with the highest
    visible SHR (the first by region_id when none is visible), so a state of 100 regions stays readable and fast."""
    if level == "region":
        return list(mine["region_id"])
    ranked = mine.assign(_shr=mine["shr"].fillna(-1.0)).sort_values(["_shr", "region_id"], ascending=[False, True])
    return list(ranked["region_id"].head(DETAILED))


def _driver_rows(rows: pd.DataFrame, names: dict[str, str]) -> list[dict[str, str]]:
    """Each modelled region's drivers with their signed SHAP values and its PM2.5, one line per region."""
    out = []
    for _, r in rows.iterrows():
        ranked = [f"{r[f'driver_{k}']} ({r[f'driver_{k}_shap']:+.2f})" for k in range(1, N_DRIVERS + 1)
                  if not pd.isna(r[f"driver_{k}"])]  # fmt: skip
        pm = "not available" if pd.isna(r["pm25_mean"]) else f"{r['pm25_mean']:.1f}"
        out.append({"name": f"{names[r['region_id']]} ({r['region_id']})", "drivers": "; ".join(ranked)
                    or "not modelled", "pm25": pm})  # fmt: skip
    return out


def region_report(
    data: CatalogData, subject: Subject, period: int, shared: figures.PeriodFigures, run_id: str,
    cache: FigureCache | None = None,
) -> Report:
    """The HTML report of one region (or parent region) and period; `cache` keeps the figures spanning all periods
    for the next period's reports."""
    cache = {} if cache is None else cache
    current = data.period_rows(period)
    mine = current[current["region_id"].isin(subject.region_ids)]
    detailed = _detailed(mine, subject.level)
    history = data.profile[data.profile["region_id"].isin(subject.region_ids)]
    shown = history[history["region_id"].isin(detailed)]
    names = dict(zip(data.regions["region_id"], data.regions["name"].fillna(data.regions["region_id"]), strict=True))
    parent = f", {len(subject.region_ids)} regions" if subject.level == "parent" else ""
    many = subject.level == "parent"
    over_time = len(data.periods) > 1  # one period has no trend to draw
    context = {
        **_common(data, f"Hospitalization burden: {subject.title}", period, run_id),
        "subject": subject.title,
        "subtitle": f"{'Region' if subject.level == 'region' else 'Parent region'} {subject.key}{parent}",
        "outcomes": [{"name": names[r["region_id"]], "region_id": r["region_id"],
                      "cells": _outcome_cells(r, data.threshold)} for _, r in mine.iterrows()],
        "indices": _index_rows(mine, names),
        "detail_note": f"Figures one by one for the {len(detailed)} regions with the highest SHR in {period} "
                       f"({', '.join(names[r] for r in detailed)}); the tables list all {len(mine)}." if many else "",
        "driver_rows": _driver_rows(mine, names) if many else [],
        "figures": {
            "map": data_uri(shared.region_map(subject.region_ids)),
            "ranking": data_uri(shared.shr_ranking(subject.region_ids)),
            "grid": _cached(cache, ("grid", subject.key), lambda: figures.trend_grid(
                history, {r: f"{names[r]} ({r})" for r in subject.region_ids}, f"SHR over periods: {subject.title}"))
            if many and over_time else None,
            "trends": _trend_figures(shown, names, cache) if over_time else [],
            "drivers": _driver_figures(mine[mine["region_id"].isin(detailed)], names),
            "pm25": _pm25_figures(shown, names, cache),
        },
        **_imaging_context(data, mine),
    }  # fmt: skip
    return Report(subject.key, subject.level, period, render("region.html.j2", context))


def _quintile_rows(current: pd.DataFrame) -> list[dict[str, object]]:
    """Regions, hidden cells and pooled SHR of the visible cells per composite quintile."""
    out = []
    for quintile, g in current.dropna(subset=["composite_quintile"]).groupby("composite_quintile"):
        expected = g["expected_cases"].sum()
        pooled = f"{g['cases'].sum() / expected:.2f}" if expected > 0 else "not available"
        out.append({"quintile": int(quintile), "regions": len(g), "hidden": int(g["suppressed"].sum()),
                    "pooled_shr": pooled})  # fmt: skip
    return out


def national_report(
    data: CatalogData, period: int, shared: figures.PeriodFigures, run_id: str, top: int = 10
) -> Report:
    """The national summary of one period: map, ranking, highest SHR with drivers, quintiles x SHR, imaging."""
    current = data.period_rows(period)
    highest = current.dropna(subset=["shr"]).sort_values(["shr", "region_id"], ascending=[False, True]).head(top)
    context = {
        **_common(data, f"Hospitalization burden: national summary, {period}", period, run_id),
        "n_regions": len(current),
        "n_hidden": int(current["suppressed"].sum()),
        "highest": [{"name": r["name"], "region_id": r["region_id"], "state": r["parent_name"],
                     "cases": f"{r['cases']:,d}", "expected": f"{r['expected_cases']:.1f}", "shr": _ci(r),
                     "driver": "not modelled" if pd.isna(r["driver_1"])
                     else f"{r['driver_1']} ({r['driver_1_shap']:+.2f})"} for _, r in highest.iterrows()],
        "quintiles": _quintile_rows(current),
        "figures": {
            "map": data_uri(shared.region_map(())),
            "ranking": data_uri(shared.shr_ranking(())),
        },
        **_imaging_context(data, current),
    }  # fmt: skip
    return Report(NATIONAL, NATIONAL, period, render("national.html.j2", context))


def period_figures(data: CatalogData, period: int) -> figures.PeriodFigures:
    """The SHR map and ranking of `period` every report of it shares."""
    return figures.PeriodFigures(data.shapes, data.period_rows(period), period)


def build_reports(
    data: CatalogData, period: int, level: Level, chosen: Sequence[str] | None, run_id: str,
    cache: FigureCache | None = None,
) -> Iterator[Report]:
    """The national summary and one report per subject for `period`, one at a time (the map and ranking drawn once
    for all; pass one `cache` to every period of a run to draw the figures spanning all periods once)."""
    shared = period_figures(data, period)
    cache = {} if cache is None else cache
    chosen_subjects = subjects(data, level, chosen)  # an unknown region is refused before anything is drawn
    yield national_report(data, period, shared, run_id)
    for subject in chosen_subjects:
        yield region_report(data, subject, period, shared, run_id, cache)


def report_for(
    data: CatalogData, key: str, period: int, level: Level, run_id: str, cache: FigureCache | None = None
) -> Report:
    """One report on demand: `key` is a region_id (parent_id at level parent) or 'national'."""
    shared = period_figures(data, period)
    if key == NATIONAL:
        return national_report(data, period, shared, run_id)
    return region_report(data, subjects(data, level, [key])[0], period, shared, run_id, cache)


def store_report(report: Report, store: ArtifactStore, on_demand: bool = False) -> Artifact:
    """Store one report as a public, content-hashed artifact; on-demand reports under their own name, so they never
    replace the file the `reports` table lists."""
    name = f"{report.artifact_name}_on_demand" if on_demand else report.artifact_name
    return store.put(name, report.html.encode("utf-8"), kind="report", privacy="public", suffix="html")
