"""HTML rendering of the reports: Jinja2 templates (autoescaped) and how a cell is shown, suppressed cells included."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Cell:
    """One table cell as shown: its text, and whether it is shown as suppressed."""

    text: str
    suppressed: bool = False


def data_uri(png: bytes) -> str:
    """A PNG as a data: URI, so the report needs no other file and makes no request."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def hidden_label(suppression: object, threshold: int) -> str | None:
    """How a hidden cell reads, by its published `suppression` reason; None for a visible cell."""
    if pd.isna(suppression) or suppression is False:
        return None
    return {"secondary": "suppressed (complementary)", "period": "suppressed (whole period)"}.get(
        str(suppression), f"suppressed (< {threshold})")


def cell(value: object, fmt: str, hidden: str | None) -> Cell:
    """`value` formatted with `fmt`; the `hidden` label on a hidden cell; "not available" when missing."""
    if hidden is not None:
        return Cell(hidden, suppressed=True)
    if pd.isna(value):
        return Cell("not available")
    return Cell(format(value, fmt))


@cache
def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip


def render(template: str, context: dict[str, Any]) -> str:
    """Render `templates/<template>` with `context`."""
    return _environment().get_template(template).render(**context)


def external_references(html: str) -> list[str]:
    """Every src/href (and CSS url()) of the document that is not a data: URI or an in-page anchor: what a browser
    would fetch. Empty for a self-contained report."""
    found: list[str] = []

    class _Refs(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend(v for k, v in attrs if k in {"src", "href", "srcset", "poster", "data"} and v is not None)

    _Refs().feed(html)
    found += re.findall(r"url\(\s*['\"]?([^'\")]+)", html)
    return [ref for ref in found if not ref.startswith(("data:", "#"))]
