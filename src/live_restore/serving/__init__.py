"""Beyond the acquisition process: batch restoration on dask.distributed, and model serving.

Lazy: the Triton server (``_triton_server``) runs in an environment of its own that has no
zarr or Dask, so importing this package imports neither until a name below is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._batch import BatchReport, plan_outputs, restore_store
    from ._run_inspect import RunInspection, inspect_run
    from ._server_process import free_ports, tritonserver_pids
    from ._zarr_image import InputImage, ZarrImageError, open_inputs

_HOMES = {
    "BatchReport": "._batch",
    "plan_outputs": "._batch",
    "restore_store": "._batch",
    "InputImage": "._zarr_image",
    "ZarrImageError": "._zarr_image",
    "open_inputs": "._zarr_image",
    "RunInspection": "._run_inspect",
    "inspect_run": "._run_inspect",
    "free_ports": "._server_process",
    "tritonserver_pids": "._server_process",
}

__all__ = [
    "BatchReport",
    "InputImage",
    "RunInspection",
    "ZarrImageError",
    "free_ports",
    "inspect_run",
    "open_inputs",
    "plan_outputs",
    "restore_store",
    "tritonserver_pids",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
