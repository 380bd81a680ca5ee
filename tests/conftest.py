from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from live_restore.devices import LiveRestoreCore, config_path, demo_core, load_core, release_core

requires_democam = pytest.mark.skipif(
    importlib.util.find_spec("mm_test_adapters") is None,
    reason="needs the mm-test-adapters package (Micro-Manager's C++ DemoCamera)",
)

SMALL_FRAME = 64

# pymmcore-plus picks its signal backend per core: Qt when a QApplication exists ("auto").
# The napari tests leave one behind, so without this a core's backend would depend on test
# order. Cores here use psygnal; tests/viewer asks for Qt, as a real napari window gets.
os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Engines built by the tests go to a temporary cache, never the checkout's."""
    from live_restore.inference._cache import CACHE_ENV

    folder = tmp_path_factory.mktemp("engine-cache")
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture
def core() -> Iterator[LiveRestoreCore]:
    """The demo core from mm_configs/sim_demo.cfg, with small frames; released at teardown."""
    mmc = demo_core()
    mmc.setProperty("Camera", "FrameSize", SMALL_FRAME)
    yield mmc
    release_core(mmc)


@pytest.fixture
def democam_core() -> Iterator[LiveRestoreCore]:
    """Micro-Manager's C++ DemoCamera from mm_configs/democam.cfg; released at teardown."""
    if importlib.util.find_spec("mm_test_adapters") is None:
        pytest.skip("needs the mm-test-adapters package")
    mmc = load_core(config_path("democam.cfg"))
    mmc.setProperty("Camera", "OnCameraCCDXSize", SMALL_FRAME)
    mmc.setProperty("Camera", "OnCameraCCDYSize", SMALL_FRAME)
    yield mmc
    release_core(mmc)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``cli("demo", "--headless", ...)``: run ``live-restore`` in this process (typer's CliRunner).

    The result has ``exit_code``, ``stdout`` and ``output`` (stdout and stderr). The console
    is pinned 200 columns wide for the test, so what a test reads does not depend on the
    terminal pytest runs in (rich asks the terminal, then COLUMNS, then takes 80).
    """
    from typer.testing import CliRunner

    from live_restore._cli import app
    from live_restore._cli_common import console

    monkeypatch.setattr(console, "_width", 200)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args))

    return invoke
