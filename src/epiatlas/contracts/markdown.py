"""Render contracts as Markdown documentation (docs/contracts.md)."""

from __future__ import annotations

from epiatlas.contracts.model import ColumnSpec, Contract

_HEADER = "| column | type | unit | nullable | range | allowed | pattern | references | description |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _range(spec: ColumnSpec) -> str:
    if spec.min is None and spec.max is None:
        return ""
    low = "" if spec.min is None else f"{spec.min:g}"
    high = "" if spec.max is None else f"{spec.max:g}"
    return f"{low} – {high}"


def _notes(spec: ColumnSpec) -> str:
    notes = ["optional in the file" if spec.optional else "",
             "computed at ingest" if spec.derived else "",
             "generated as file:row when absent" if spec.generate == "file_row" else "",
             f"normalised: {', '.join(spec.transform)}" if spec.transform else "",
             "whole number" if spec.integer else ""]
    extra = "; ".join(n for n in notes if n)
    return spec.description + (f" ({extra})" if extra else "")


def _column_row(spec: ColumnSpec) -> str:
    cells = [
        f"`{spec.name}`", spec.type, spec.unit or "", "yes" if spec.nullable else "no", _range(spec),
        ", ".join(f"`{v}`" for v in spec.allowed) if spec.allowed else "",
        f"`{spec.pattern}`" if spec.pattern else "",
        f"`{spec.references}`" if spec.references else "",
        _notes(spec),
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _section(contract: Contract) -> list[str]:
    lines = [
        f"## {contract.name}",
        "",
        contract.description,
        "",
        f"- kind: {contract.kind}",
        f"- privacy: {contract.privacy}",
        f"- key: {', '.join(f'`{k}`' for k in contract.primary_key) or '(none)'}",
        "",
        _HEADER,
        "|" + "---|" * (_HEADER.count("|") - 1),
        *(_column_row(c) for c in contract.columns),
        "",
    ]
    if contract.rules:
        lines += ["Row rules:", ""]
        lines += [f"- `{r.name}`: `{' '.join(r.sql.split())}`" + (f" — {r.description}" if r.description else "")
                  for r in contract.rules]
        lines.append("")
    return lines


def render_markdown(contracts: dict[str, Contract]) -> str:
    """One section per table, in name order; generated, so edit the YAML instead."""
    lines = ["# Data contracts", "", "Generated from `data_contracts/*.yaml`; do not edit by hand.", ""]
    for name in sorted(contracts):
        lines += _section(contracts[name])
    return "\n".join(lines).rstrip() + "\n"
