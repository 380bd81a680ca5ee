"""A small, honest trainer: progress bar, warm-up and cosine rate, validation, resume, seed.

Each step's batch is drawn from ``numpy.random.default_rng([seed, step])``, so a resumed run sees
exactly the batches an uninterrupted one would have. Checkpoints (safetensors) are written every
``checkpoint_every`` steps and at the end; ``history.csv`` holds loss and validation per step.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ._checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "BatchSource",
    "TrainResult",
    "TrainSettings",
    "Trainer",
    "Validation",
    "cosine_factor",
    "run_facts",
]


class BatchSource(Protocol):
    """Anything that draws a training batch from a generator."""

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` examples as (inputs, targets)."""
        ...


@dataclass(frozen=True)
class TrainSettings:
    """How long and how fast to train."""

    steps: int
    batch_size: int
    learning_rate: float
    final_learning_rate_fraction: float = 0.05
    seed: int = 0
    validate_every: int = 100
    checkpoint_every: int = 100
    # a linear ramp to the peak rate: a run that starts from trained weights (--init-from) is
    # otherwise knocked back by Adam's first steps at the full rate
    warmup_steps: int = 0
    # a wall-clock cap (a lent GPU's minutes): stop at the first step past it, checkpoint and
    # report the steps done; the cosine is not finished then, and the record says so
    max_seconds: float | None = None
    # a run that ends by the clock (adapt): the bar counts seconds of max_seconds, not steps
    progress_by_time: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError("steps, batch size and learning rate must be positive")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(
                f"warm-up steps must be from 0 to fewer than the {self.steps} steps, "
                f"got {self.warmup_steps}"
            )


@dataclass
class TrainResult:
    """What a training run did."""

    steps_done: int
    seconds: float
    final_loss: float
    validation: dict[str, float] = field(default_factory=dict)


def run_facts(result: TrainResult, digits: int = 5) -> dict[str, object]:
    """What model.yaml records of a run: time, device (the Trainer's default), versions, loss."""
    import platform

    from live_restore._version import __version__

    return {
        "seconds": round(result.seconds, 1),
        "device": f"{'cuda' if torch.cuda.is_available() else 'cpu'} "
        f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "live_restore": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "final_loss": round(result.final_loss, 6),
        "validation": {k: round(v, digits) for k, v in result.validation.items()},
    }


LossFunction = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
Validation = Callable[[nn.Module], dict[str, float]]


def cosine_factor(progress: float, floor: float) -> float:
    """A cosine from 1 at ``progress`` 0 down to ``floor`` at 1: the learning rate's shape."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class Trainer:
    """Trains ``network`` on batches from ``source``; ``validate`` scores held-out data."""

    def __init__(
        self,
        network: nn.Module,
        loss: LossFunction,
        source: BatchSource,
        validate: Validation,
        settings: TrainSettings,
        folder: Path,
        device: str | None = None,
    ) -> None:
        # a GPU when there is one: batches are drawn on the CPU and moved; validation runs on
        # the CPU (its tensors live there), checkpoints are written from the CPU
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.network = network
        self.loss = loss
        self.source = source
        self.validate = validate
        self.settings = settings
        self.folder = folder
        # a loss with parameters of its own (a learnable PSF) trains with the network
        self.loss_module: nn.Module | None = None
        if isinstance(loss, nn.Module) and next(loss.parameters(), None) is not None:
            self.loss_module = loss
        parameters = [*network.parameters()]
        if self.loss_module is not None:
            parameters += [*self.loss_module.parameters()]
        self.optimizer = torch.optim.Adam(parameters, lr=settings.learning_rate)

    @property
    def checkpoint_path(self) -> Path:
        """Where the checkpoint is kept."""
        return self.folder / "checkpoint.safetensors"

    def _learning_rate(self, step: int) -> float:
        s = self.settings
        progress = min(step / s.steps, 1.0)
        floor = s.final_learning_rate_fraction
        ramp = min(1.0, (step + 1) / s.warmup_steps) if s.warmup_steps else 1.0
        return s.learning_rate * ramp * cosine_factor(progress, floor)

    def run(
        self, resume: bool = False, progress: bool = True, stop_after: int | None = None
    ) -> TrainResult:
        """Train to ``settings.steps`` (from the checkpoint if ``resume``).

        ``stop_after`` ends the run early at that step, with a checkpoint, keeping the
        schedule of the full run: train in chunks, resume later.
        """
        last_step = min(stop_after or self.settings.steps, self.settings.steps)
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.folder.mkdir(parents=True, exist_ok=True)
        start_step, seconds_before = 0, 0.0
        if resume:
            if not self.checkpoint_path.is_file():
                raise FileNotFoundError(f"cannot resume: no checkpoint at {self.checkpoint_path}")
            info = load_checkpoint(
                self.checkpoint_path, self.network, self.optimizer, self.loss_module
            )
            start_step, seconds_before = int(info["step"]), float(info.get("seconds", 0.0))
        self._to(self.device)
        torch.manual_seed(self.settings.seed)
        history_path = self.folder / "history.csv"
        mode = "a" if resume and history_path.is_file() else "w"
        started = time.perf_counter()
        loss_value, validation = math.nan, {}
        self.network.train()
        by_time = self.settings.progress_by_time and self.settings.max_seconds is not None
        with (
            history_path.open(mode, newline="", encoding="utf-8") as history_file,
            Progress(
                TextColumn("training"),
                BarColumn(),
                TextColumn(
                    "{task.fields[steps]} steps · {task.completed:.0f}/{task.total:.0f} s · "
                    "{task.fields[status]}"
                    if by_time
                    else "{task.completed}/{task.total} steps · {task.fields[status]}"
                ),
                TimeRemainingColumn(),
                disable=not progress,
            ) as bar,
        ):
            history = csv.writer(history_file)
            if mode == "w":
                history.writerow(["step", "learning_rate", "loss", "validation"])
            total = self.settings.max_seconds if by_time else self.settings.steps
            task = bar.add_task(
                "train", total=total, completed=0 if by_time else start_step, status="", steps=0
            )
            for step in range(start_step, last_step):
                rate = self._learning_rate(step)
                for group in self.optimizer.param_groups:
                    group["lr"] = rate
                rng = np.random.default_rng([self.settings.seed, step])
                inputs, targets = self.source.batch(self.settings.batch_size, rng)
                inputs, targets = inputs.to(self.device), targets.to(self.device)
                loss = self.loss(self.network, inputs, targets)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss.item()} at step {step}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                loss_value = float(loss.item())
                done = step + 1
                validation_text = ""
                if done % self.settings.validate_every == 0 or done == self.settings.steps:
                    validation = self._validation()
                    validation_text = " ".join(f"{k}={v:.4g}" for k, v in validation.items())
                history.writerow([done, f"{rate:.3g}", f"{loss_value:.6g}", validation_text])
                if done % self.settings.checkpoint_every == 0 or done in (
                    last_step,
                    self.settings.steps,
                ):
                    history_file.flush()
                    self._save(done, seconds_before + time.perf_counter() - started)
                status = f"loss {loss_value:.4g} {validation_text}"
                elapsed = time.perf_counter() - started
                bar.update(task, completed=elapsed if by_time else done, status=status, steps=done)
                cap = self.settings.max_seconds
                if cap is not None and time.perf_counter() - started > cap and done < last_step:
                    validation = self._validation()
                    scores = " ".join(f"{k}={v:.4g}" for k, v in validation.items())
                    history.writerow([done, f"{rate:.3g}", f"{loss_value:.6g}", f"cap {scores}"])
                    history_file.flush()
                    self._save(done, seconds_before + time.perf_counter() - started)
                    last_step = done
                    break
        self._to("cpu")
        self.network.eval()
        return TrainResult(
            steps_done=last_step,
            seconds=seconds_before + time.perf_counter() - started,
            final_loss=loss_value,
            validation=validation,
        )

    def _to(self, device: str) -> None:
        """The network, the loss's parameters and Adam's state on ``device``."""
        self.network.to(device)
        if self.loss_module is not None:
            self.loss_module.to(device)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and key != "step":
                    state[key] = value.to(device)

    def _validation(self) -> dict[str, float]:
        self.network.eval()
        self._to("cpu")
        with torch.no_grad():
            scores = self.validate(self.network)
        self._to(self.device)
        self.network.train()
        return scores

    def _save(self, step: int, seconds: float) -> None:
        info = {"step": step, "seconds": seconds, "seed": self.settings.seed}
        self._to("cpu")
        save_checkpoint(self.checkpoint_path, self.network, self.optimizer, info, self.loss_module)
        self._to(self.device)
