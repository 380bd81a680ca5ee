"""Restoration during acquisition: restorers (and, next, the RestoreHook that runs them)."""

from ._restorers import IdentityRestorer, Restorer, RichardsonLucyRestorer, as_frame

__all__ = ["IdentityRestorer", "Restorer", "RichardsonLucyRestorer", "as_frame"]
