"""Offline icons for pymmcore-widgets: nothing is downloaded at run time.

pymmcore-widgets draws its buttons with Iconify icons through ``pyconify``, which fetches each
SVG from api.iconify.design the first time and keeps it in an on-disk cache. Offline (a lab PC,
these test machines) the fetch fails inside a widget's constructor and takes the process down.

``icons/mdi.json`` ships the Material Design Icons those widgets use (from the npm package
``@iconify-json/mdi``; Apache-2.0, © Pictogrammers), the same data the Iconify API serves.
:func:`seed_icon_cache` writes them into pyconify's cache under the names pyconify looks for
when it cannot reach the API (keys ending in its "no last-modified date" marker ``000``). Online,
pyconify uses dated keys, so it downloads (and caches) its own copies as usual.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["icon_svg", "seed_icon_cache"]

log = logging.getLogger(__name__)

_ICONS = Path(__file__).resolve().parent / "icons" / "mdi.json"
_OFFLINE_MARK = "000"  # pyconify's key suffix when the API's last-modified date is unknown


def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_ICONS.read_text(encoding="utf-8"))
    return data


def icon_svg(
    data: dict[str, Any], name: str, color: str | None = None, flip: str | None = None
) -> str:
    """The SVG document the Iconify API returns for ``mdi:<name>`` (colour and flip applied)."""
    icon = data["icons"][name]
    width = int(icon.get("width", data["width"]))
    height = int(icon.get("height", data["height"]))
    body = str(icon["body"])
    if color:
        body = body.replace("currentColor", color)
    flips = set((flip or "").split(",")) - {""}
    if icon.get("hFlip"):
        flips ^= {"horizontal"}
    if icon.get("vFlip"):
        flips ^= {"vertical"}
    if flips:
        sx, tx = (-1, width) if "horizontal" in flips else (1, 0)
        sy, ty = (-1, height) if "vertical" in flips else (1, 0)
        body = f'<g transform="translate({tx} {ty}) scale({sx} {sy})">{body}</g>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="1em" height="1em" '
        f'viewBox="0 0 {width} {height}">{body}</svg>'
    )


def _cache_key(name: str, params: dict[str, str]) -> str:
    # pyconify's key: prefix, name, then the non-empty parameters sorted by name, then the date
    parts = ["mdi", name]
    for key, value in sorted(params.items()):
        parts += [key, value]
    return "_".join([*parts, _OFFLINE_MARK])


def seed_icon_cache() -> int:
    """Write the shipped icons into pyconify's SVG cache where missing; return how many."""
    try:
        import pyconify
    except ImportError:  # pymmcore-widgets would not import either
        return 0
    folder = Path(pyconify.get_cache_directory()) / "svg_cache"
    data = _load()
    wanted: list[tuple[str, dict[str, str]]] = [(name, {}) for name in data["icons"]]
    wanted += [(str(name), dict(params)) for name, params in data["requested"]]
    written = 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, params in wanted:
            path = folder / f"{_cache_key(name, params)}.svg"
            if not path.exists():
                path.write_text(icon_svg(data, name, params.get("color"), params.get("flip")))
                written += 1
    except OSError as e:  # a read-only home: pyconify would try the network, as without us
        log.warning("cannot seed pyconify's icon cache in %s: %s", folder, e)
    return written
