"""Reports as stored artifacts: each HTML file, the PDF Chromium prints of it next to it, and what Chromium found
wrong when it loaded the report; the rows of the `reports` table."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from epiatlas.artifacts import Artifact, ArtifactStore
from epiatlas.reports.browser import Chromium
from epiatlas.reports.build import Level, Report, report_for, store_report
from epiatlas.reports.inputs import CatalogData

REPORT_COLUMNS = ["region_id", "period", "level", "sha256", "bytes", "pdf_sha256", "pdf_bytes"]
ON_DEMAND_RUN = "on demand (epiatlas report)"


@dataclass(frozen=True)
class StoredReport:
    """One report's stored HTML and PDF (None when PDFs are off) and the problems Chromium saw loading it."""

    report: Report
    html: Artifact
    pdf: Artifact | None
    problems: tuple[str, ...] = ()


class BackgroundRenderer:
    """Chromium on one worker thread: each submitted report is loaded, printed and stored there while the caller
    draws the next one (the browser's own processes use the other core)."""

    def __init__(self, store: ArtifactStore, pdf: bool) -> None:
        self._store, self._pdf = store, pdf
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="chromium")
        self._browser: Chromium | None = None

    def __enter__(self) -> BackgroundRenderer:
        self._browser = self._pool.submit(Chromium().__enter__).result()  # created and used on the worker only
        return self

    def submit(self, report: Report) -> Future[StoredReport]:
        """Render and store `report` on the worker."""
        return self._pool.submit(store_rendered, report, self._store, self._browser, self._pdf)

    def __exit__(self, *exc_info: object) -> None:
        if self._browser is not None:
            self._pool.submit(self._browser.__exit__, None, None, None).result()
        self._pool.shutdown()


def store_rendered(
    report: Report, store: ArtifactStore, browser: Chromium, pdf: bool, on_demand: bool = False
) -> StoredReport:
    """Load `report` in `browser`, store its HTML and (when `pdf`) its PDF under the same artifact name."""
    rendered = browser.render(report.html, pdf=pdf)
    html = store_report(report, store, on_demand)
    printed = None if rendered.pdf is None else store.put(html.name, rendered.pdf, kind="report",
                                                          privacy="public", suffix="pdf")  # fmt: skip
    return StoredReport(report, html, printed, rendered.problems)


def write_report(
    data: CatalogData, key: str, period: int, level: Level, store: ArtifactStore, pdf: bool
) -> StoredReport:
    """One report on demand (`key`: region_id, parent_id at level parent, or 'national'), its PDF when `pdf`;
    stored under `<name>_on_demand`, never replacing the scheduled report the `reports` table lists."""
    report = report_for(data, key, period, level, run_id=ON_DEMAND_RUN)
    if not pdf:
        return StoredReport(report, store_report(report, store, on_demand=True), None)
    with Chromium() as browser:
        return store_rendered(report, store, browser, pdf=True, on_demand=True)


def report_rows(stored: Sequence[StoredReport]) -> pd.DataFrame:
    """The `reports` table rows: subject, period, level, content hash and size of each HTML file and its PDF."""
    return pd.DataFrame(
        [{"region_id": s.report.subject, "period": s.report.period, "level": s.report.level,
          "sha256": s.html.sha256, "bytes": s.html.size,
          "pdf_sha256": s.pdf.sha256 if s.pdf else None, "pdf_bytes": s.pdf.size if s.pdf else None}
         for s in stored],
        columns=REPORT_COLUMNS,
    ).astype({"pdf_bytes": "Int64"})  # fmt: skip
