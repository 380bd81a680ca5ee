"""Beyond the acquisition process: batch restoration on dask.distributed, and model serving."""

from ._batch import BatchReport, plan_outputs, restore_store
from ._zarr_image import InputImage, ZarrImageError, open_inputs

__all__ = [
    "BatchReport",
    "InputImage",
    "ZarrImageError",
    "open_inputs",
    "plan_outputs",
    "restore_store",
]
