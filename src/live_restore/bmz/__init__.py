"""BioImage Model Zoo export: a trained model as a bioimageio.spec 0.5 package, tested offline.

Needs the ``bmz`` extra (bioimageio.core); ``live-restore export bmz NAME --out NAME.zip``.
"""

from ._package import EXPORTABLE_TASKS, TILE_PX, export_bmz, test_package

__all__ = ["EXPORTABLE_TASKS", "TILE_PX", "export_bmz", "test_package"]
