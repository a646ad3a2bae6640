"""What an analyst sees in the Dagster UI without reading code: described, owned, grouped assets; described jobs
that select the right groups; a typed, documented launchpad config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from orchestration.definitions import GROUP_OWNERS, build_definitions, with_group_owner
from orchestration.jobs import (
    ALL_ASSETS_JOB,
    IMAGING_GROUPS,
    IMAGING_JOB,
    INGEST_GROUPS,
    INGEST_JOB,
    MODELS_GROUPS,
    MODELS_JOB,
    OUTCOMES_GROUPS,
    OUTCOMES_JOB,
    REPORTS_ASSET,
    REPORTS_JOB,
)
from orchestration.resources import EpiatlasResource

CONCERN_GROUPS = {
    INGEST_JOB: set(INGEST_GROUPS),
    OUTCOMES_JOB: set(OUTCOMES_GROUPS),
    MODELS_JOB: set(MODELS_GROUPS),
    IMAGING_JOB: set(IMAGING_GROUPS),
}


@pytest.fixture(scope="module")
def defs(small_demo: Path) -> dg.Definitions:
    return build_definitions(small_demo)


@pytest.fixture(scope="module")
def graph(defs: dg.Definitions):
    return defs.resolve_asset_graph()


def test_every_asset_has_a_description_a_group_and_its_groups_owner(graph) -> None:
    keys = graph.get_all_asset_keys()
    assert len(keys) > 20  # the whole pipeline, not an empty graph
    for key in keys:
        node = graph.get(key)
        assert (node.description or "").strip(), f"{key.to_user_string()} has no description"
        assert node.group_name and node.group_name != "default", f"{key.to_user_string()} has no group"
        assert GROUP_OWNERS[node.group_name] in node.owners, f"{key.to_user_string()}: owners {node.owners}"


def test_owners_are_teams_and_every_team_owns_something(graph) -> None:
    owners = {owner for key in graph.get_all_asset_keys() for owner in graph.get(key).owners}
    assert owners == {"team:data-engineering", "team:epidemiology", "team:radiology-ai"}


def test_an_asset_in_a_group_without_a_team_is_refused_naming_it() -> None:
    with pytest.raises(dg.DagsterInvalidDefinitionError, match=r"stray.*'scratch'.*GROUP_OWNERS"):
        with_group_owner(dg.AssetSpec("stray", group_name="scratch"))


def test_an_owner_set_on_the_asset_itself_is_kept() -> None:
    spec = with_group_owner(dg.AssetSpec("figure", group_name="models", owners=["ana@example.org"]))
    assert spec.owners == ["ana@example.org", "team:epidemiology"]


def test_every_job_says_what_it_does(defs: dg.Definitions) -> None:
    jobs = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    assert {*CONCERN_GROUPS, REPORTS_JOB, ALL_ASSETS_JOB} <= {job.name for job in jobs}
    for job in jobs:
        assert len((job.description or "").split()) >= 10, f"{job.name}: {job.description!r}"


@pytest.mark.parametrize("job_name", sorted(CONCERN_GROUPS))
def test_each_concern_job_selects_exactly_its_groups(defs: dg.Definitions, graph, job_name: str) -> None:
    selected = defs.resolve_job_def(job_name).asset_layer.selected_asset_keys
    in_groups = {key for key in graph.get_all_asset_keys() if graph.get(key).group_name in CONCERN_GROUPS[job_name]}
    assert selected and selected == in_groups


def test_reports_job_selects_the_reports(defs: dg.Definitions) -> None:
    assert defs.resolve_job_def(REPORTS_JOB).asset_layer.selected_asset_keys == {dg.AssetKey(REPORTS_ASSET)}


def test_the_refresh_job_selects_every_asset_including_the_reports(defs: dg.Definitions, graph) -> None:
    selected = defs.resolve_job_def(ALL_ASSETS_JOB).asset_layer.selected_asset_keys
    assert selected == set(graph.get_all_asset_keys())
    assert dg.AssetKey(REPORTS_ASSET) in selected


def test_the_resource_config_is_typed_and_documented() -> None:
    fields = EpiatlasResource.to_config_schema().as_field().config_type.fields
    assert fields
    for name, field in fields.items():
        assert field.config_type.given_name != "Any" and field.config_type.kind.name != "ANY", name
        assert len((field.description or "").split()) >= 5, f"{name}: {field.description!r}"
