"""Binary warehouse artifacts (fitted models, figures) stored by content hash with a privacy flag.

An artifact lives at `<warehouse>/artifacts/<name>/<sha256>.<suffix>`; the same bytes always land at the same
path, so re-runs are idempotent. Private artifacts (e.g. a pickled model fit on unsuppressed counts) are
written 0600 in 0700 folders and never enter the published catalog; public ones (figures of public tables) do.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from epiatlas.errors import WarehouseError

Privacy = Literal["private", "public"]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class FigureSpec:
    """One figure: its name, what it shows and its PNG."""

    name: str
    description: str
    png: bytes


@dataclass(frozen=True)
class Artifact:
    """One stored artifact: what it is, its content hash, whether it may be published, where it lies."""

    name: str
    kind: str
    sha256: str
    privacy: Privacy
    media_type: str
    path: Path

    @property
    def size(self) -> int:
        """Bytes on disk."""
        return self.path.stat().st_size

    def read(self) -> bytes:
        """The artifact's bytes."""
        return self.path.read_bytes()


_MEDIA = {"png": "image/png", "pkl": "application/octet-stream", "pt": "application/octet-stream",
          "txt": "text/plain", "json": "application/json", "html": "text/html", "pdf": "application/pdf"}


class ArtifactStore:
    """Content-addressed artifacts under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, name: str, data: bytes, *, kind: str, privacy: Privacy, suffix: str) -> Artifact:
        """Store `data` under `name` (atomically, by content hash) and return its record."""
        if not _NAME.match(name):
            raise WarehouseError(f"invalid artifact name {name!r}: use lower-case letters, digits and _")
        if suffix not in _MEDIA:
            raise WarehouseError(f"unknown artifact suffix {suffix!r}; use one of {sorted(_MEDIA)}")
        sha = hashlib.sha256(data).hexdigest()
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700 if privacy == "private" else 0o755)
        target = folder / f"{sha}.{suffix}"
        if not target.exists():
            tmp = folder / f".{sha}.{uuid.uuid4().hex}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if privacy == "private" else 0o644)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        for old in folder.glob(f"*.{suffix}"):  # one current version per name; older hashes are superseded
            if old != target:
                old.unlink()
        return Artifact(name, kind, sha, privacy, _MEDIA[suffix], target)

    def current(self, name: str, suffix: str) -> Path:
        """The file of the current version of artifact `name`; WarehouseError when none is stored."""
        found = sorted((self.root / name).glob(f"*.{suffix}")) if (self.root / name).is_dir() else []
        if len(found) != 1:
            raise WarehouseError(f"artifact {name!r} is not stored under {self.root} (found {len(found)} versions); "
                                 f"materialize the asset that writes it first")
        return found[0]


def figure_table(store: ArtifactStore, figures: list[FigureSpec]) -> pd.DataFrame:
    """Store each figure as a public PNG artifact; the rows of a figures table (name, description, sha256, png)."""
    stored = [store.put(f.name, f.png, kind="figure", privacy="public", suffix="png") for f in figures]
    return pd.DataFrame(
        {
            "name": [f.name for f in figures],
            "description": [f.description for f in figures],
            "sha256": [a.sha256 for a in stored],
            "png": [f.png for f in figures],
        }
    )
