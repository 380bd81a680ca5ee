from __future__ import annotations

import pytest
import zarr

from live_restore._demo import run_demo
from live_restore.simulate import SimMicroscope


# UniMMCore's acquisition thread re-raises the device error after stopping the sequence: that
# is the very failure this test provokes, so pytest's report of it is expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_camera_failure_mid_run_keeps_frames_under_a_partial_name(tmp_path, monkeypatch):
    render = SimMicroscope.expected_photons

    def failing_on_the_fourth_frame(self, record):
        if record.index == 3:
            raise RuntimeError("simulated camera failure")
        return render(self, record)

    monkeypatch.setattr(SimMicroscope, "expected_photons", failing_on_the_fourth_frame)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match=r"delivered 3 of 6 frames.*run\.partial"):
        run_demo(out, frames=6, frame_size=32, models=["identity"], progress=False)
    assert not out.exists()  # nothing that looks complete
    kept = zarr.open_group(str(tmp_path / "run.partial" / "raw.ome.zarr"), mode="r")
    assert len(kept.attrs["ome_writers"]["frame_metadata"]) == 3  # what was acquired is kept


def test_demo_result_reports_low_light_photons(tmp_path):
    result = run_demo(tmp_path / "ok", frames=4, frame_size=64, light_level="Low")
    assert result.frames == 4 and result.frame_shape == (64, 64)
    assert result.frames_restored == 4 and result.models == ("richardson-lucy",)
    # the restored last frame is closer to the simulator's ground truth than the raw one
    assert result.nrmse_restored < 0.9 * result.nrmse_raw
    # Low = 10 % excitation x 10 ms x 20 photons/ms at 100 %: about 20 photons at the peak
    assert 8 < result.peak_photons < 40
    assert result.mean_counts > 100
