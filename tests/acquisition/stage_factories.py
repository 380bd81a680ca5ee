"""Restorers built inside a process executor's worker (importable there by module name)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from live_restore.acquisition import IdentityRestorer


class ExitsOnEveryCall(IdentityRestorer):
    """Its process dies on every call, as a segfaulting extension would."""

    name = "crashes"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        os._exit(3)


@dataclass(frozen=True)
class HangsOnce:
    """Identity whose first call in the first process never returns (a deadlocked driver)."""

    marker: Path

    def __call__(self) -> IdentityRestorer:
        marker = self.marker

        class _Hangs(IdentityRestorer):
            name = "hangs-once"

            def __call__(self, frame: np.ndarray) -> np.ndarray:
                if not marker.exists():
                    marker.write_text(str(os.getpid()))
                    time.sleep(3600)
                return super().__call__(frame)

        return _Hangs()


@dataclass(frozen=True)
class KillsItselfOnce:
    """Identity whose process SIGKILLs itself on call ``on_call`` (0-based), once per marker."""

    marker: Path
    on_call: int

    def __call__(self) -> IdentityRestorer:
        marker, on_call = self.marker, self.on_call

        class _Killed(IdentityRestorer):
            name = "killed"
            calls = 0

            def __call__(self, frame: np.ndarray) -> np.ndarray:
                call, self.calls = self.calls, self.calls + 1
                if call == on_call and not marker.exists():
                    marker.write_text(str(os.getpid()))
                    os.kill(os.getpid(), signal.SIGKILL)
                return super().__call__(frame)

        return _Killed()


@dataclass(frozen=True)
class Slow:
    """Identity, ``delay_s`` slow, that writes its process id where the test can see it."""

    pid_file: Path
    delay_s: float = 0.05

    def __call__(self) -> IdentityRestorer:
        self.pid_file.write_text(str(os.getpid()))
        delay_s = self.delay_s

        class _Slow(IdentityRestorer):
            name = "slow"

            def __call__(self, frame: np.ndarray) -> np.ndarray:
                time.sleep(delay_s)
                return super().__call__(frame)

        return _Slow()


def identity() -> IdentityRestorer:
    return IdentityRestorer()


def exits_on_every_call() -> IdentityRestorer:
    return ExitsOnEveryCall()


def raises_memory_error() -> IdentityRestorer:
    class _Oom(IdentityRestorer):
        name = "oom"

        def __call__(self, frame: np.ndarray) -> np.ndarray:
            raise MemoryError("cannot allocate 64 GiB for the workspace")

    return _Oom()


def doubles() -> IdentityRestorer:
    """Identity times two: a stand-in for other (adapted) weights under the same name."""

    class _Doubles(IdentityRestorer):
        def __call__(self, frame: np.ndarray) -> np.ndarray:
            return 2 * super().__call__(frame)

    return _Doubles()


def fails_to_build() -> IdentityRestorer:
    raise ValueError("model.yaml: weights file missing")
