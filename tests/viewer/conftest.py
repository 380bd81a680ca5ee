from __future__ import annotations

import os

import pytest

# .ci/run sets this: there, a missing X server is a failure, not a skip
_REQUIRED = os.environ.get("LIVE_RESTORE_REQUIRE_GUI_TESTS") == "1"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("DISPLAY") or _REQUIRED:
        return
    skip = pytest.mark.skip(reason="needs an X server (install xvfb: pytest-xvfb starts it)")
    for item in items:
        if "tests/viewer" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _qt_signals(qapp, monkeypatch):
    # cores made in these tests deliver their signals through Qt, as in the napari window
    monkeypatch.setenv("PYMM_SIGNALS_BACKEND", "qt")
