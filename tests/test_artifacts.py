"""Content-addressed artifacts: same bytes same path, privacy decides file modes, one current version per name."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from epiatlas.artifacts import ArtifactStore
from epiatlas.errors import WarehouseError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_put_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first = store.put("forest_plot", b"png-bytes", kind="figure", privacy="public", suffix="png")
    again = store.put("forest_plot", b"png-bytes", kind="figure", privacy="public", suffix="png")
    assert first == again
    assert first.sha256 == hashlib.sha256(b"png-bytes").hexdigest()
    assert first.read() == b"png-bytes" and first.media_type == "image/png"


def test_new_version_supersedes_the_old(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    old = store.put("forest_plot", b"v1", kind="figure", privacy="public", suffix="png")
    new = store.put("forest_plot", b"v2", kind="figure", privacy="public", suffix="png")
    assert not old.path.exists() and new.path.exists()
    assert [p.name for p in (tmp_path / "forest_plot").iterdir()] == [new.path.name]


def test_private_artifacts_are_owner_only(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    model = store.put("glm_cases_model", b"pickle", kind="model", privacy="private", suffix="pkl")
    figure = store.put("shr_map", b"png", kind="figure", privacy="public", suffix="png")
    assert _mode(model.path) == 0o600 and _mode(model.path.parent) == 0o700
    assert _mode(figure.path) == 0o644


@pytest.mark.parametrize("name", ["../escape", "Upper", "a/b", ""])
def test_names_cannot_leave_the_store(tmp_path: Path, name: str) -> None:
    with pytest.raises(WarehouseError, match="invalid artifact name"):
        ArtifactStore(tmp_path).put(name, b"x", kind="figure", privacy="public", suffix="png")
