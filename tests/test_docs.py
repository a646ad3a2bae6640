"""Generated documentation stays in step with its sources."""

from __future__ import annotations

from pathlib import Path

from epiatlas.contracts import load_contracts, render_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_contract_reference_is_regenerated_from_the_contracts() -> None:
    committed = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    assert committed == render_markdown(load_contracts()), "run `make docs` after changing data_contracts/"


def test_readme_starts_with_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_example_config_is_valid(tmp_path: Path) -> None:
    from epiatlas.config import load_config

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("```yaml", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example, encoding="utf-8")
    cfg = load_config(path)
    assert cfg.sources.hospitalizations is not None and "icu" not in cfg.sources.hospitalizations.columns
    assert cfg.sources.census.recode["sex"] == {"H": "M", "M": "F"}
