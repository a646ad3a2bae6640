"""Reports read the way a person reads them: one headless Chromium (Debian's package, driven by playwright) loads
each report offline, records what goes wrong (console and page errors, outside requests, broken images) and
prints it to PDF or takes a screenshot.

Playwright never downloads a browser here: Chromium is `$EPIATLAS_CHROMIUM` or `chromium` on the PATH.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from epiatlas.reports.errors import ReportError

CHROMIUM_ENV = "EPIATLAS_CHROMIUM"
VIEWPORT = {"width": 1000, "height": 1200}
BROKEN_IMAGES = """() => Array.from(document.images)
    .filter(img => !(img.complete && img.naturalWidth > 0))
    .map(img => img.alt || img.src.slice(0, 80))"""
PDF_DATES = re.compile(rb"(/(?:CreationDate|ModDate) \(D:)\d{14}([+-]\d\d'\d\d')?")
FIXED_DATE = b"20000101000000"


class BrowserMissingError(ReportError):
    """No Chromium to render reports with."""


class BrowserFailedError(ReportError):
    """Chromium could not be started or could not load, print or capture a report."""


def chromium_path() -> Path:
    """The Chromium executable: `$EPIATLAS_CHROMIUM`, else `chromium` on the PATH; BrowserMissingError when neither."""
    found = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")
    if not found or not os.access(found, os.X_OK) or not Path(found).is_file():
        where = f"${CHROMIUM_ENV}={found!r} is not an executable file" if found else "no `chromium` on the PATH"
        raise BrowserMissingError(f"reports are rendered in headless Chromium, but {where}: run `make setup` (or "
                                  f"`apt-get install chromium`), or set {CHROMIUM_ENV} to a Chromium executable")
    return Path(found)


@dataclass(frozen=True)
class RenderedReport:
    """What Chromium made of one report: its PDF and screenshot (when asked), its text, and the problems seen."""

    problems: tuple[str, ...]
    text: str
    pdf: bytes | None = None
    screenshot: bytes | None = None


class _Watch:
    """Collects a page's console errors, page errors, blocked (outside) and failed requests."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.blocked: set[str] = set()

    def reset(self) -> None:
        """Forget what the previous report showed."""
        self.problems, self.blocked = [], set()

    def route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith("data:"):
            route.continue_()
            return
        self.blocked.add(url)
        self.problems.append(f"outside request blocked: {url}")
        route.abort("blockedbyclient")

    def console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def page_error(self, error: Any) -> None:
        self.problems.append(f"page error: {error}")

    def request_failed(self, request: Any) -> None:
        if request.url not in self.blocked:
            self.problems.append(f"request failed: {request.url[:80]} ({request.failure})")


def _fixed_dates(pdf: bytes) -> bytes:
    """The PDF with its creation and modification dates set to one fixed date of the same length (cross-reference
    offsets stay valid), so the same report always prints to the same bytes."""
    return PDF_DATES.sub(lambda m: m[1] + FIXED_DATE + (b"+00'00'" if m[2] else b""), pdf)


class _Driver:
    """The process's one playwright driver (its sync API runs one at a time per thread), shared by nested
    `Chromium` batches and stopped when the last one closes."""

    playwright: Any = None
    users = 0

    @classmethod
    def acquire(cls) -> Any:
        from playwright.sync_api import sync_playwright

        if cls.users == 0:
            cls.playwright = sync_playwright().start()
        cls.users += 1
        return cls.playwright

    @classmethod
    def release(cls) -> None:
        cls.users -= 1
        if cls.users == 0:
            cls.playwright.stop()
            cls.playwright = None


class Chromium:
    """One headless Chromium and page for a batch of reports: `with Chromium() as browser: browser.render(html)`.

    The page is reused (a new one costs more than loading a report into it); each render loads a new document.
    """

    def __init__(self, executable: Path | None = None, timeout_s: float = 60.0) -> None:
        self.executable = executable or chromium_path()
        self.timeout_ms = timeout_s * 1000
        self._browser: Any = None
        self._page: Any = None
        self._watch = _Watch()

    def __enter__(self) -> Chromium:
        from playwright.sync_api import Error

        playwright = _Driver.acquire()
        try:
            self._browser = playwright.chromium.launch(
                executable_path=self.executable, args=["--no-sandbox"], timeout=self.timeout_ms)
        except Error as exc:
            _Driver.release()
            raise BrowserFailedError(f"Chromium at {self.executable} did not start: {exc.message.splitlines()[0]}; "
                                     f"check that it runs (`{self.executable} --version`) or set {CHROMIUM_ENV}"
                                     ) from exc  # fmt: skip
        self._page = self._browser.new_page(viewport=VIEWPORT)
        self._page.set_default_timeout(self.timeout_ms)
        self._page.route("**/*", self._watch.route)
        self._page.on("console", self._watch.console)
        self._page.on("pageerror", self._watch.page_error)
        self._page.on("requestfailed", self._watch.request_failed)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._browser.close()
        _Driver.release()

    def render(self, html: str, *, pdf: bool = False, screenshot: bool = False) -> RenderedReport:
        """Load `html` offline (every request but data: URIs blocked and recorded), check it, and print it (A4,
        backgrounds, no header or footer) or capture it (full page) when asked."""
        from playwright.sync_api import Error

        page = self._page
        self._watch.reset()
        try:
            page.goto("about:blank")  # a new document: nothing (a CSP, a script's state) carries over from the last
            page.set_content(html, wait_until="load")
            broken = [f"broken image: {name}" for name in page.evaluate(BROKEN_IMAGES)]
            text = page.inner_text("body")
            printed = _fixed_dates(page.pdf(format="A4", print_background=True)) if pdf else None
            shot = page.screenshot(full_page=True, type="png") if screenshot else None
        except Error as exc:
            raise BrowserFailedError(f"Chromium could not render the report: {exc.message.splitlines()[0]}") from exc
        return RenderedReport(tuple(self._watch.problems + broken), text, printed, shot)
