"""The CPU runtime and precision ``auto`` takes for a model: this machine's measurement first.

``live-restore bench --record`` times a model on every CPU backend at each precision it may run
at (``cpu_precisions`` in model.yaml: fp32 and the reduced ones that passed the quality check),
and writes the fastest into the engine cache: a JSON file (``auto-*.choice``) keyed by the
model's weights, this CPU and the runtimes' versions, so another machine, a new runtime or new
weights measure afresh.
The winner is the backend and precision fastest at the most frame sizes timed (ties: the larger
frame). Without a record, ``auto`` takes model.yaml's ``cpu_backend`` (measured on the 2-core
VM) at the first of its ``cpu_precisions``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from live_restore.models import ModelSpec

from ._backend import CPU_BACKENDS
from ._cache import EngineCache

__all__ = ["CpuChoice", "cpu_choice", "record_cpu_choice"]

_KIND = "auto"
_SUFFIX = ".choice"  # JSON; not .json, which the cache keeps for its own records


@dataclass(frozen=True)
class CpuChoice:
    """What ``auto`` runs a model at on this CPU, and where that came from."""

    backend: str
    precisions: tuple[str, ...]
    source: str  # "bench record <path>" or "model.yaml"


@functools.lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_fields(spec: ModelSpec, threads: int) -> dict[str, Any]:
    """What a measured choice depends on: the weights, this CPU and the runtimes."""
    return {
        "model": spec.name,
        "weights_sha256": spec.weights_sha256,
        "cpu": _cpu_name(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "cpu_precisions": list(spec.cpu_precisions),
        "onnxruntime": _version("onnxruntime"),
        "openvino": _version("openvino"),
        "torch": _version("torch"),
    }


def cpu_choice(spec: ModelSpec, cache: EngineCache, threads: int) -> CpuChoice:
    """The choice recorded on this machine for ``spec``, else model.yaml's."""
    fields = machine_fields(spec, threads)
    path = cache.lookup(spec.name, _KIND, fields, _SUFFIX)
    if path is not None:
        try:
            chosen = json.loads(path.read_text(encoding="utf-8"))["choice"]
            return CpuChoice(
                str(chosen["backend"]),
                (str(chosen["precision"]), *spec.cpu_precisions),
                f"bench record {path}",
            )
        except (OSError, ValueError, KeyError, TypeError):
            cache.remove(path)  # written by us, so unreadable means damaged: measure again
    return CpuChoice(spec.cpu_backend, tuple(spec.cpu_precisions), "model.yaml")


def fastest(timings: Iterable[tuple[str, str, int, float]]) -> tuple[str, str]:
    """``(backend, precision)`` fastest at the most frame sizes (ties: the larger frame).

    ``timings``: ``(backend, precision, frame_px, median_ms)`` rows.
    """
    best: dict[int, tuple[float, str, str]] = {}
    for backend, precision, size, median_ms in timings:
        if size not in best or median_ms < best[size][0]:
            best[size] = (median_ms, backend, precision)
    if not best:
        raise ValueError("no timings to choose from")
    wins = Counter((b, p) for _, b, p in best.values())
    largest = {key: max(s for s, (_, b, p) in best.items() if (b, p) == key) for key in wins}
    return max(wins, key=lambda key: (wins[key], largest[key]))


def record_cpu_choice(
    spec: ModelSpec,
    cache: EngineCache,
    threads: int,
    timings: list[tuple[str, str, int, float]],
) -> tuple[tuple[str, str], Path]:
    """Write the fastest of ``timings`` as this machine's choice for ``spec``; it and the file.

    Only cells ``auto`` may take count: CPU backends at the model's ``cpu_precisions``.
    """
    allowed = [row for row in timings if row[0] in CPU_BACKENDS and row[1] in spec.cpu_precisions]
    choice = fastest(allowed)
    fields = machine_fields(spec, threads)
    document = {
        "choice": {"backend": choice[0], "precision": choice[1]},
        "timings_ms": [
            {"backend": b, "precision": p, "frame_px": s, "median_ms": round(ms, 2)}
            for b, p, s, ms in allowed
        ],
        "rule": "fastest at the most frame sizes timed (ties: the larger frame)",
    }

    def write(path: Path) -> None:
        path.write_text(json.dumps(document, indent=1), encoding="utf-8")

    return choice, cache.store(spec.name, _KIND, fields, _SUFFIX, write)
