"""Full-page screenshots of the national report and one parent-region report of the latest period, for the docs.

    .venv/bin/python scripts/report_screenshots.py --config demo_data/config.yaml [--out docs/img]

Reads the published catalog of `--config` (run the pipeline first), renders both reports in headless Chromium
(`epiatlas.reports.browser`) and writes `report-national.png` and `report-region.png`, each reduced to a
256-colour palette (and scaled down if needed) to stay under --max-kb.
"""

from __future__ import annotations

import argparse
from io import BytesIO
from pathlib import Path

from PIL import Image

from epiatlas.config import load_config
from epiatlas.publish import warehouse_for
from epiatlas.reports.browser import Chromium
from epiatlas.reports.build import Report, Subject, national_report, period_figures, region_report, subjects
from epiatlas.reports.errors import ReportError
from epiatlas.reports.inputs import CatalogData, read_catalog_data

RUN_ID = "screenshot (scripts/report_screenshots.py)"


def _example_parent(data: CatalogData, period: int) -> Subject:
    """The smallest parent region with, in `period`, a suppressed cell and a visible, modelled one (else the first):
    a report that shows both."""
    rows = data.period_rows(period).set_index("region_id")
    shown = rows["driver_1"].notna() & ~rows["suppressed"]

    def fits(subject: Subject) -> bool:
        return bool(rows.loc[list(subject.region_ids), "suppressed"].any() and shown[list(subject.region_ids)].any())

    found = [s for s in subjects(data, "parent") if fits(s)]
    return min(found, key=lambda s: (len(s.region_ids), s.key)) if found else subjects(data, "parent")[0]


def _small_png(png: bytes, max_bytes: int) -> bytes:
    """`png` as a 256-colour palette PNG, scaled down by steps of 0.8 until it fits in `max_bytes`."""
    image = Image.open(BytesIO(png)).convert("RGB")
    while True:
        out = BytesIO()
        image.quantize(colors=256).save(out, format="png", optimize=True)
        if out.tell() <= max_bytes or image.width < 300:
            return out.getvalue()
        image = image.resize((int(image.width * 0.8), int(image.height * 0.8)), Image.Resampling.LANCZOS)


def screenshots(config: Path, out: Path, max_kb: int) -> list[Path]:
    """Write the two screenshots under `out`; ReportError when Chromium sees a problem in either report."""
    with warehouse_for(load_config(config)).read_catalog() as con:
        data = read_catalog_data(con)
    period = data.periods[-1]
    shared = period_figures(data, period)
    reports: dict[str, Report] = {
        "national": national_report(data, period, shared, RUN_ID),
        "region": region_report(data, _example_parent(data, period), period, shared, RUN_ID),
    }
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with Chromium() as browser:
        for name, report in reports.items():
            page = browser.render(report.html, screenshot=True)
            if page.problems or page.screenshot is None:
                raise ReportError(f"the {name} report did not render cleanly: {list(page.problems)[:5]}")
            path = out / f"report-{name}.png"
            path.write_bytes(_small_png(page.screenshot, max_kb * 1024))
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="config of a run whose catalog is published")
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="folder for the PNG files")
    parser.add_argument("--max-kb", type=int, default=380, help="largest file size in KiB")
    args = parser.parse_args()
    for path in screenshots(args.config, args.out, args.max_kb):
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
