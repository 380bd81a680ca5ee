"""The architecture source a BioImage Model Zoo package carries: one file, no live-restore import.

A ``pytorch_state_dict`` package names a Python file and a callable in it; a consumer (deepImageJ,
ilastik, bioimageio.core) imports that file alone. Our networks import project modules
(``dfcan.py`` uses ``_fourier.py``), so the file is assembled from the very modules the model runs
with: their sources concatenated, the imports between them dropped, ``from __future__`` once.
Nothing is rewritten by hand, so the package's network is the tested one.
"""

from __future__ import annotations

import inspect
from types import ModuleType

__all__ = ["architecture_source"]

_FUTURE = "from __future__ import annotations"


def architecture_source(modules: list[ModuleType]) -> str:
    """``modules`` (dependencies first) as one importable source text."""
    parts = [
        f'"""Assembled by live-restore from {", ".join(m.__name__ for m in modules)}."""',
        _FUTURE,
    ]
    for module in modules:
        kept = []
        for line in inspect.getsource(module).splitlines():
            if line.strip() == _FUTURE or line.startswith("from ."):
                continue
            if line.startswith("__all__"):
                continue  # each module's own list would hide the others' names
            kept.append(line)
        parts.append(f"# ---- {module.__name__} ----\n" + "\n".join(kept))
    return "\n\n".join(parts) + "\n"
