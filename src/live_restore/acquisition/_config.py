"""HookConfig: everything a RestoreHook is built from, as one validated, saveable document.

The CLI (``acquire --hook-config FILE``), the demo and the napari dock all build their hook
from one of these through :func:`~live_restore.acquisition.build_hook`, so a set-up made in
one front end runs the same in another. YAML or JSON; unknown keys are refused.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from live_restore.frames import BackendName, Policy, Precision

__all__ = ["AdaptConfig", "ConfigError", "FocusConfig", "HoldConfig", "HookConfig"]


class ConfigError(ValueError):
    """A hook configuration file that cannot be read or does not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class HoldConfig(_Strict):
    """Opt-in focus hold: move the focus stage by the drift the focus monitor trusts."""

    gain: float = Field(
        1.0, gt=0.0, le=1.0, description="Fraction of the error corrected per step."
    )
    max_step_um: float = Field(0.5, gt=0.0, description="Largest single correction (µm).")
    max_travel_um: float = Field(
        10.0, gt=0.0, description="How far from the start position the stage may go (µm)."
    )
    deadband_um: float = Field(0.15, ge=0.0, description="Errors below this are left alone (µm).")


class FocusConfig(_Strict):
    """The focus monitor: a defocus estimator on each frame, flags with hysteresis."""

    estimator: str = Field("focus-est", description="The shipped defocus estimator to load.")
    threshold_um: float = Field(0.5, gt=0.0, description="|defocus| that flags a frame (µm).")
    hold: HoldConfig | None = Field(None, description="Focus hold; None leaves the stage alone.")
    every_nth_when_behind: int = Field(
        1,
        ge=1,
        description="While restoration catches up on a batch, estimate every Nth frame and the "
        "newest (frees the CPU for restoring and the display); 1: every frame.",
    )


class LightConfig(_Strict):
    """Opt-in light that follows trust: a trust stage's untrusted share steps the excitation."""

    group: str = Field("LightLevel", description="Config group whose presets set the light.")
    ladder: list[str] = Field(
        ["VeryLow", "Low", "Medium", "High"],
        min_length=2,
        description="The group's presets, dimmest first.",
    )
    lowest: str | None = Field(None, description="Never below this preset (default: the first).")
    highest: str | None = Field(None, description="Never above this preset (default: the last).")
    raise_above: float = Field(
        0.05, gt=0.0, le=1.0, description="Untrusted share above which the light steps up."
    )
    lower_below: float = Field(
        0.01, ge=0.0, lt=1.0, description="Untrusted share below which the light steps down."
    )


class AdaptConfig(_Strict):
    """Opt-in: adapt one stage to this acquisition's own frames while it runs.

    The stage's first ``after_frames`` input frames of an MDA are its teacher (``live-restore
    adapt``, no ground truth, in a background process at idle priority). The adapted weights
    take over at the next time-point boundary, and only when their held-out error fell.
    """

    stage: str = Field(description="The stage to adapt (one of ``models``).")
    after_frames: int = Field(
        12,
        ge=6,
        le=1000,
        description="Learn from the stage's first N of an MDA: planes of each z-stack for "
        "interp-z, time points of each series for interp-t and mfsr-sr2x (fewer when the "
        "acquisition has fewer), frames for single-frame super-resolution; the last fifth is "
        "held out to check the result. Copies of at most 512 MB of frames are held.",
    )
    minutes: float = Field(3.0, gt=0.0, le=120.0, description="The fine-tune's budget (min).")
    steps: int | None = Field(
        None, ge=1, description="Stop after this many steps if sooner (a reproducible run)."
    )
    method: Literal["pairs", "triplets", "consistency"] | None = Field(
        None, description="As ``live-restore adapt --method`` (default: the model's)."
    )
    na: float | None = Field(
        None, gt=0.0, le=1.7, description="Super-resolution: the objective's NA."
    )
    emission_nm: float | None = Field(
        None, gt=0.0, description="Super-resolution: the emission wavelength (nm)."
    )
    pixel_um: float | None = Field(
        None, gt=0.0, description="Super-resolution: the camera pixel at the sample (µm)."
    )


class HookConfig(_Strict):
    """What a :class:`~live_restore.acquisition.RestoreHook` restores, how, and where to."""

    models: list[str] = Field(
        min_length=1, description="Stages, in order: restorer or shipped model names."
    )
    backend: BackendName = Field(BackendName.AUTO, description="Where trained models run.")
    precision: Precision = Field(Precision.AUTO, description="Arithmetic of trained models.")
    policy: Policy = Field(
        Policy.ALL,
        description="Which frames: 'all', every frame restored; 'latest', the newest wins "
        "(display). The old name 'process' is read too, with a warning.",
    )
    memory_mb: float = Field(512.0, gt=0.0, description="Most memory frames are held in (MB).")
    max_batch: int = Field(8, ge=1, description="Most frames handed to a stage at once.")
    max_consecutive_failures: int = Field(
        5, ge=1, description="A stage failing this many frames in a row is disabled."
    )
    server_grace_s: float = Field(
        60.0,
        gt=0.0,
        description="A served stage (executor grpc://...) whose server is unreachable keeps "
        "trying for this long (its frames fail, each named) before it is disabled; a server "
        "back within it restores again.",
    )
    output: Path | None = Field(
        None, description="Folder for restored stores, frames.csv and summary.json."
    )
    drain_timeout_s: float | None = Field(
        None,
        gt=0.0,
        description="On close, the most time to finish pending work (None: while it progresses).",
    )
    stall_timeout_s: float = Field(
        20.0,
        gt=0.0,
        description="On close, give up when a stage call runs this long (s) without returning "
        "(or 5x the slowest call's time per frame times the frames in the call, if longer; "
        "3x this before any call returned); what is left is recorded as undone.",
    )
    interp_factor: int = Field(
        2,
        ge=2,
        le=16,
        description="Interpolation stages (interp-t, interp-z): full-rate frames per acquired "
        "step (acquire every k-th time point or plane; k-1 are filled in between).",
    )
    window_mode: Literal["centred", "causal"] = Field(
        "centred",
        description="Multi-frame stages (mfsr-sr2x): 'centred' fuses each frame with the ones "
        "on both sides (better, window//2 frames of latency); 'causal' with the ones before "
        "it (no added latency).",
    )
    live: bool = Field(
        True,
        description="Also restore live mode (display only); a stage whose groups cannot form "
        "from one stream (SIM sets, interp-z) is refused for it when the hook is built.",
    )
    progress: bool = Field(True, description="A progress bar while pending work finishes.")
    stats_interval_s: float = Field(0.5, gt=0.0, description="How often stats are emitted (s).")
    focus: FocusConfig | None = Field(None, description="The focus monitor; None: off.")
    light: LightConfig | None = Field(
        None, description="Light that follows a trust stage (MODEL+trust); None: off."
    )
    adapt: AdaptConfig | None = Field(
        None,
        description="Adapt a stage to the acquisition's own first frames (needs ``output``); "
        "None: off.",
    )
    executor: str = Field(
        "thread",
        description="Where stages run: 'thread', the hook's worker thread; 'process', a worker "
        "process that owns the models (frames cross by shared memory; the camera keeps its "
        "cores and the GIL); 'grpc://HOST:PORT', a Triton server (`live-restore serve`).",
    )

    @field_validator("executor")
    @classmethod
    def _an_executor(cls, value: str) -> str:
        if value in ("thread", "process") or re.fullmatch(r"grpc://[^\s:/]+:\d+", value):
            return value
        raise ValueError("an executor is 'thread', 'process' or 'grpc://HOST:PORT' (Triton)")

    @model_validator(mode="after")
    def _adapt_stage_is_a_stage(self) -> HookConfig:
        if self.adapt is None:
            return self
        if self.adapt.stage not in self.models:
            raise ValueError(
                f"adapt.stage {self.adapt.stage!r} is not one of the stages "
                f"({', '.join(self.models)})"
            )
        if self.output is None:
            raise ValueError(
                "adapt needs an output folder: the frames it learns from, the adapted model and "
                "the record of which frames it restored are kept there"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """``process`` (the frame policy's name until 0.3) is read as ``policy``, with a warning."""
        if isinstance(data, dict) and "process" in data:
            if "policy" in data:
                raise ValueError("give the frame policy once: 'policy' ('process' is its old name)")
            warnings.warn(
                "'process' is now 'policy' (all | latest); 'process' goes in the next release",
                FutureWarning,
                stacklevel=2,
            )
            data = {("policy" if k == "process" else k): v for k, v in data.items()}
        return data

    @classmethod
    def from_file(cls, path: str | Path) -> HookConfig:
        """Read a YAML or JSON file; ConfigError names the file and what is wrong."""
        path = Path(path)
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read hook config {path}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            message = f"{path} is not a text file (a hook config is YAML or JSON)"
            raise ConfigError(message) from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML or JSON: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of hook settings, got {data!r}")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                for err in e.errors()
            )
            raise ConfigError(f"{path}: {problems}") from None

    def to_yaml(self) -> str:
        """The configuration as YAML (what :meth:`from_file` reads back)."""
        text: str = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        return text

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_yaml` to ``path`` and return it."""
        path = Path(path)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path
