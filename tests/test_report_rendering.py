"""Reports checked the way a person reads them: loaded in headless Chromium (Debian's package), then printed to PDF
and the PDF's pages rendered to PNG (poppler's pdftoppm) and read back (pdftotext).

The reports come from the small demo's published catalog (the session's pipeline run, tests/report_fixtures.py).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from epiatlas.artifacts import ArtifactStore
from epiatlas.publish import warehouse_for
from epiatlas.reports.browser import (
    CHROMIUM_ENV,
    BrowserFailedError,
    BrowserMissingError,
    Chromium,
    RenderedReport,
    chromium_path,
)
from epiatlas.reports.build import Report, report_for
from epiatlas.reports.inputs import NATIONAL, CatalogData, read_catalog_data
from epiatlas.reports.output import report_rows, store_rendered, write_report

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.report_fixtures"]
BANNER = "SYNTHETIC DEMO DATA"
SUPPRESSED = "suppressed ("
INK_SHARE = 0.005  # a page with less than 0.5% non-white pixels counts as blank
OUTCOME_CELLS = {"cases": 2, "expected": 3, "shr": 4, "crude rate": 5, "standardised rate": 6, "residual": 8}


@pytest.fixture(scope="module")
def demo(reports_run: dict) -> dict:
    """The published catalog's report inputs, a parent region with hidden cells, and those cells' private counts."""
    cfg, latest = reports_run["cfg"], reports_run["latest"]
    warehouse = warehouse_for(cfg)
    with warehouse.read_catalog() as con:
        data = read_catalog_data(con)
        published = con.table("published_outcomes").df()
    with warehouse.connect(["region_period_outcomes"]) as con:
        private = con.table("region_period_outcomes").df()
    now = published[(published["period"] == latest) & published["suppressed"]]
    hidden = now.merge(data.regions[["region_id", "parent_id"]], on="region_id").dropna(subset=["parent_id"])
    parent = hidden["parent_id"].value_counts().index[0]
    mine = hidden[hidden["parent_id"] == parent]
    counts = private[private["period"] == latest].set_index("region_id").loc[mine["region_id"], "cases"]
    return {"data": data, "latest": latest, "parent": parent, "hidden": mine, "counts": counts, "cfg": cfg,
            "n_hidden": int(published[published["period"] == latest]["suppressed"].sum())}  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def rendered(demo: dict, browser: Chromium) -> dict[str, tuple[Report, RenderedReport]]:
    """The national summary and the parent region's report, each loaded in Chromium and printed to PDF."""
    data: CatalogData = demo["data"]
    reports = {NATIONAL: report_for(data, NATIONAL, demo["latest"], "parent", run_id="test"),
               "parent": report_for(data, demo["parent"], demo["latest"], "parent", run_id="test")}  # fmt: skip
    return {k: (r, browser.render(r.html, pdf=True)) for k, r in reports.items()}


def _title(report: Report) -> str:
    (title,) = re.findall(r"<title>(.*?)</title>", report.html)
    return title


@pytest.mark.parametrize("which", [NATIONAL, "parent"])
def test_report_loads_without_problems(rendered: dict, which: str) -> None:
    report, page = rendered[which]
    assert page.problems == ()
    assert _title(report) in page.text and BANNER in page.text
    assert "Methods and provenance" in page.text


def _row(text: str, region_id: str) -> list[str]:
    """The cells of the outcomes table's row naming `region_id`, as Chromium lays a table out in text (one line a
    row, cells tab-separated); the outcomes table is the one before the trends."""
    outcomes = text.split("Trend over periods", 1)[0]
    (line,) = [line for line in outcomes.splitlines() if f"({region_id})\t" in line]
    return line.split("\t")


def test_hidden_cells_read_as_suppressed_and_their_counts_are_absent(rendered: dict, demo: dict) -> None:
    _, page = rendered["parent"]
    threshold = demo["data"].threshold
    assert len(demo["hidden"]) >= 1
    for row in demo["hidden"].itertuples():
        cells = _row(page.text, row.region_id)
        shown = {name: cells[i] for name, i in OUTCOME_CELLS.items()}
        assert all(text.startswith(SUPPRESSED) for text in shown.values()), shown
        if row.suppression == "primary":
            assert shown["cases"] == f"suppressed (< {threshold})"
        count = int(demo["counts"][row.region_id])
        assert not any(re.search(rf"(?<![\d.]){count}(?![\d.])", text) for text in cells[2:]), (count, cells)


def test_national_summary_counts_hidden_cells_and_lists_only_visible_ones(rendered: dict, demo: dict) -> None:
    _, page = rendered[NATIONAL]
    assert f"{demo['n_hidden']} cells suppressed" in page.text
    highest = page.text.split("Highest SHR", 1)[1].split("Deprivation quintile", 1)[0]
    assert not any(f"({rid})" in highest for rid in demo["hidden"]["region_id"])


def _pages(pdf: bytes, tmp_path: Path) -> list[np.ndarray]:
    """The PDF's pages rendered at 50 dpi by pdftoppm, as RGB arrays."""
    (tmp_path / "report.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(tmp_path / "report.pdf"), str(tmp_path / "page")], check=True)
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(tmp_path.glob("page-*.png"))]


def _pdf_text(pdf: bytes) -> str:
    """pdftotext's reading of the PDF, whitespace collapsed."""
    out = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True)
    return " ".join(out.stdout.decode("utf-8").split())


@pytest.mark.parametrize("which", [NATIONAL, "parent"])
def test_pdf_pages_show_the_report(rendered: dict, which: str, tmp_path: Path) -> None:
    report, page = rendered[which]
    assert page.pdf is not None and page.pdf.startswith(b"%PDF-")
    pages = _pages(page.pdf, tmp_path)
    assert len(pages) >= 1
    ink = [float((p < 240).any(axis=2).mean()) for p in pages]
    assert min(ink) > INK_SHARE, ink
    assert pages[0].shape[0] > pages[0].shape[1], "A4 portrait"
    text = _pdf_text(page.pdf)
    assert _title(report) in text and BANNER in text
    if which == "parent":
        assert SUPPRESSED in text


def test_a_blank_pdf_page_counts_as_blank(browser: Chromium, tmp_path: Path) -> None:
    """The ink measure of the PDF test tells a blank page from a printed one."""
    printed = browser.render("<html><body></body></html>", pdf=True).pdf
    assert printed is not None
    assert max(float((p < 240).any(axis=2).mean()) for p in _pages(printed, tmp_path)) < INK_SHARE


def test_the_same_report_prints_to_the_same_bytes(rendered: dict, browser: Chromium) -> None:
    report, page = rendered["parent"]
    assert browser.render(report.html, pdf=True).pdf == page.pdf


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('<img alt="broken chart" src="data:image/png;base64,AAAA">', "broken image: broken chart"),
        ("<script>console.error('chart failed')</script>", "console error: chart failed"),
        ("<script>undefinedFunction()</script>", "page error: undefinedFunction is not defined"),
        ('<img alt="outside" src="http://127.0.0.1:9/x.png">', "outside request blocked: http://127.0.0.1:9/x.png"),
    ],
)
def test_a_faulty_page_is_reported(browser: Chromium, body: str, problem: str) -> None:
    page = browser.render(f"<!DOCTYPE html><html><body><p>report</p>{body}</body></html>")
    assert problem in page.problems, page.problems


def test_nothing_carries_over_from_the_previous_page(browser: Chromium) -> None:
    """The batch's page is reused: a report's Content-Security-Policy must not judge (or hide) the next page."""
    strict = "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">"
    assert browser.render(f"<!DOCTYPE html><html><head>{strict}</head><body>first</body></html>").problems == ()
    page = browser.render('<!DOCTYPE html><html><body><img alt="x" src="http://127.0.0.1:9/x.png"></body></html>')
    assert "outside request blocked: http://127.0.0.1:9/x.png" in page.problems, page.problems
    assert page.text == ""


def test_a_missing_browser_says_how_to_install_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CHROMIUM_ENV, str(tmp_path / "no-chromium"))
    with pytest.raises(BrowserMissingError, match="make setup.*apt-get install chromium.*EPIATLAS_CHROMIUM"):
        Chromium()
    monkeypatch.delenv(CHROMIUM_ENV)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserMissingError, match="no `chromium` on the PATH"):
        chromium_path()


def test_a_browser_that_does_not_start_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHROMIUM_ENV, "/bin/false")
    with pytest.raises(BrowserFailedError, match="did not start"), Chromium(timeout_s=20):
        pass


def test_on_demand_report_writes_html_and_pdf_side_by_side(demo: dict, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    stored = write_report(demo["data"], demo["parent"], demo["latest"], "parent", store, pdf=True)
    assert stored.problems == () and stored.pdf is not None
    assert stored.pdf.path.parent == stored.html.path.parent and stored.pdf.path.suffix == ".pdf"
    assert stored.html.path.parent.name.endswith("_on_demand")
    without = write_report(demo["data"], NATIONAL, demo["latest"], "parent", store, pdf=False)
    assert without.pdf is None and not list(without.html.path.parent.glob("*.pdf"))
    rows = report_rows([stored, without])
    assert rows["pdf_bytes"].tolist()[0] == stored.pdf.size and pd.isna(rows["pdf_sha256"].iloc[1])


def test_a_faulty_report_is_stored_with_its_problems(browser: Chromium, tmp_path: Path) -> None:
    """What the reports asset's `reports_render` check lists: the problems Chromium saw in each stored report."""
    faulty = Report("r1", "region", 2020, '<!DOCTYPE html><html><body><img alt="map" src="data:,"></body></html>')
    stored = store_rendered(faulty, ArtifactStore(tmp_path), browser, pdf=False)
    assert stored.problems == ("broken image: map",) and stored.pdf is None and stored.html.path.is_file()
