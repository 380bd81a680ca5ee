"""``engines/cache/``: built artefacts (ONNX graphs, TensorRT plans), keyed by what made them.

An artefact is only valid for the exact inputs that built it: the weights, the input shape, the
precision, and for a TensorRT plan the GPU, its compute capability and the TensorRT version. Those
fields are hashed into the file name, and written beside it in a JSON record together with the
artefact's own sha256. A lookup re-hashes the file, so a truncated, altered or half-written file is
reported in the log, deleted and rebuilt, never handed to a runtime (a corrupt plan can crash the
process inside TensorRT, not raise).

The folder is ``$LIVE_RESTORE_ENGINE_CACHE`` when set, else ``engines/cache/`` beside the shipped
models (git-ignored), else, where that is not writable (a read-only install),
``~/.cache/live-restore/engines``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from live_restore.models import engines_dir, file_sha256

__all__ = [
    "CACHE_ENV",
    "TIMING_FOLDER",
    "CacheEntry",
    "EngineCache",
    "EngineFileError",
    "cache_key",
    "default_cache_dir",
]

log = logging.getLogger(__name__)

CACHE_ENV = "LIVE_RESTORE_ENGINE_CACHE"
# TensorRT's timing caches (per GPU and version, reused across models and rebuilt plans)
TIMING_FOLDER = "tensorrt-timing"
_RECORD_SUFFIX = ".json"


class EngineFileError(RuntimeError):
    """A built engine or ONNX graph cannot be loaded, and rebuilding it did not help."""


def default_cache_dir() -> Path:
    """Where built engines go (see the module docstring for the order)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    beside_models = engines_dir() / "cache"
    parent = beside_models if beside_models.exists() else beside_models.parent
    if os.access(parent, os.W_OK):
        return beside_models
    return Path.home() / ".cache" / "live-restore" / "engines"


def _as_json(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as they read back from a record (tuples as lists, other objects as text)."""
    normalised: dict[str, Any] = json.loads(json.dumps(dict(fields), default=str))
    return normalised


def cache_key(fields: Mapping[str, Any]) -> str:
    text = json.dumps(_as_json(fields), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CacheEntry:
    """One cached artefact and its record (``None`` when the record is unreadable)."""

    path: Path
    record: dict[str, Any] | None

    @property
    def model(self) -> str:
        return self.path.parent.name

    @property
    def kind(self) -> str:
        return self.path.name.split("-", 1)[0]

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def problem(self) -> str | None:
        """Why this entry cannot be used, or ``None`` when it is intact."""
        if self.record is None:
            return "its record is missing or unreadable"
        if not self.path.is_file():
            return "the artefact file is missing"
        if file_sha256(self.path) != self.record.get("sha256"):
            return "its sha256 does not match the record (truncated or altered)"
        return None


class EngineCache:
    """Build-once storage for artefacts, one folder per model."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def _path(self, model: str, kind: str, fields: Mapping[str, Any], suffix: str) -> Path:
        return self.folder / model / f"{kind}-{cache_key(fields)}{suffix}"

    def lookup(self, model: str, kind: str, fields: Mapping[str, Any], suffix: str) -> Path | None:
        """The intact artefact for ``fields``, or ``None`` (a bad one is deleted and logged)."""
        path = self._path(model, kind, fields, suffix)
        if not path.exists() and not _record_path(path).exists():
            return None
        entry = CacheEntry(path, _read_record(path))
        problem = entry.problem()
        if problem is None and entry.record is not None:
            if entry.record.get("fields") != _as_json(fields):
                problem = "it was built for other inputs (stale)"
        if problem is None:
            return path
        log.warning("cached %s %s is unusable: %s; rebuilding it", kind, path, problem)
        self.remove(path)
        return None

    def store(
        self,
        model: str,
        kind: str,
        fields: Mapping[str, Any],
        suffix: str,
        write: Callable[[Path], None],
    ) -> Path:
        """Build an artefact with ``write(temporary_path)``, then publish it with its record.

        The artefact is renamed into place only once it is complete, and the record is written
        last, so an interrupted build leaves nothing that a lookup would accept.
        """
        path = self._path(model, kind, fields, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        try:
            write(partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        record = {
            "model": model,
            "kind": kind,
            "fields": _as_json(fields),
            "sha256": file_sha256(path),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _record_path(path).write_text(json.dumps(record, indent=1), encoding="utf-8")
        return path

    def get_or_build(
        self,
        model: str,
        kind: str,
        fields: Mapping[str, Any],
        suffix: str,
        write: Callable[[Path], None],
    ) -> Path:
        """The cached artefact, built first when missing, stale or corrupt."""
        found = self.lookup(model, kind, fields, suffix)
        return found if found is not None else self.store(model, kind, fields, suffix, write)

    def remove(self, path: Path) -> None:
        """Delete an artefact and its record."""
        path.unlink(missing_ok=True)
        _record_path(path).unlink(missing_ok=True)

    def entries(self, model: str | None = None) -> list[CacheEntry]:
        """Every artefact in the cache (or of one model), sorted by model and name."""
        if not self.folder.is_dir():
            return []
        folders = [self.folder / model] if model else sorted(self.folder.iterdir())
        found = []
        for folder in folders:
            if not folder.is_dir() or folder.name == TIMING_FOLDER:
                continue
            for path in sorted(folder.iterdir()):
                if path.suffix == _RECORD_SUFFIX or path.name.endswith(".partial"):
                    continue
                found.append(CacheEntry(path, _read_record(path)))
            # a record whose artefact is gone is listed too, so that `clear` can remove it
            for record in sorted(folder.glob(f"*{_RECORD_SUFFIX}")):
                artefact = record.with_suffix("")
                if not artefact.exists():
                    found.append(CacheEntry(artefact, _read_record(artefact)))
        return found

    def clear(self, model: str | None = None) -> int:
        """Delete every artefact (or one model's); the number deleted."""
        entries = self.entries(model)
        for entry in entries:
            self.remove(entry.path)
        if model is None:
            # TensorRT's kernel timings: not an engine, but built by the same runs
            shutil.rmtree(self.folder / TIMING_FOLDER, ignore_errors=True)
        for folder in [self.folder / model] if model else list(self.folder.glob("*")):
            if folder.is_dir():
                for leftover in folder.glob("*.partial"):
                    leftover.unlink(missing_ok=True)
                if not any(folder.iterdir()):
                    folder.rmdir()
        return len(entries)


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + _RECORD_SUFFIX)


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(_record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
