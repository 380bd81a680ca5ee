from __future__ import annotations

import numpy as np
import pytest
import useq

from live_restore.devices import SimMicroscopeHub, load_core, microscope_of, release_core
from live_restore.simulate import SimMicroscope

# the acquisition: a z-plan, a time plan and two light levels
Z_TIME_TWO_LIGHT_LEVELS = useq.MDASequence(
    time_plan={"interval": 0, "loops": 2},
    z_plan={"range": 2.0, "step": 1.0},
    channels=[
        {"config": "Low", "group": "LightLevel"},
        {"config": "High", "group": "LightLevel"},
    ],
    axis_order="tpcz",
)


def _run_collecting(core, sequence):
    frames = []

    def on_frame(image, event, meta):
        frames.append((event, image.copy()))

    core.mda.events.frameReady.connect(on_frame)
    try:
        core.mda.run(sequence)
    finally:
        core.mda.events.frameReady.disconnect(on_frame)
    return frames


def test_demo_core_has_the_simulated_microscope_wired_together(core):
    assert core.getCameraDevice() == "Camera"
    assert core.getFocusDevice() == "Z"
    assert core.getXYStageDevice() == "XY"
    assert core.getShutterDevice() == "Light"
    assert core.getPixelSizeUm() == pytest.approx(0.065)
    assert core.getImageWidth() == core.getImageHeight() == 64
    scope = microscope_of(core)
    core.setPosition(1.25)
    core.setXYPosition(3.0, -2.0)
    assert scope.stage_um == [3.0, -2.0, 1.25]
    core.setConfig("LightLevel", "High")
    assert scope.excitation_percent == 100.0
    core.setConfig("Channel", "SIM-A1P2")
    assert scope.pattern_index == 6


def test_snap_returns_a_frame_whose_truth_matches_it(core):
    scope = microscope_of(core)
    core.setConfig("LightLevel", "High")
    core.snapImage()
    image = core.getImage()
    truth = scope.ground_truth()
    assert image.dtype == np.uint16 and image.shape == (64, 64)
    # the frame is a noisy draw around the truth: counts ≈ photons + offset
    residual = image.astype(float) - 100.0 - truth.expected_photons
    assert abs(residual.mean()) < 4 * np.sqrt((truth.expected_photons.mean() + 2.25) / image.size)
    assert np.corrcoef(image.ravel(), truth.expected_photons.ravel())[0, 1] > 0.8


def test_mda_with_z_time_and_two_light_levels_on_the_demo_core(core):
    scope = microscope_of(core)
    sequence = Z_TIME_TWO_LIGHT_LEVELS
    records = []
    core.mda.events.frameReady.connect(lambda img, ev, meta: records.append(scope.last_record))
    frames = _run_collecting(core, sequence)
    assert len(frames) == 2 * 2 * 3
    for (event, image), record in zip(frames, records, strict=True):
        assert image.shape == (64, 64)
        assert record.defocus_um == pytest.approx(event.z_pos)
        assert record.excitation_percent == (10.0 if event.index["c"] == 0 else 100.0)
        assert record.shutter_open, "AutoShutter must open the light for every frame"
    low = np.mean([img.mean() for ev, img in frames if ev.index["c"] == 0]) - 100
    high = np.mean([img.mean() for ev, img in frames if ev.index["c"] == 1]) - 100
    assert high / low == pytest.approx(10.0, rel=0.1)


def test_hardware_sequenced_acquisition_delivers_lit_frames(core):
    core.setAutoShutter(True)  # sim_demo.cfg leaves it off; our core honours it when on
    core.setConfig("LightLevel", "High")
    core.startSequenceAcquisition(4, 0, True)
    while core.isSequenceRunning():
        pass
    images = [core.popNextImage() for _ in range(core.getRemainingImageCount())]
    core.stopSequenceAcquisition()
    assert len(images) == 4
    assert all(img.mean() > 101 for img in images)
    assert not core.getShutterOpen()  # AutoShutter closed it again


@pytest.mark.parametrize(
    "device, prop, value, message",
    [
        ("SimScope", "NA", 1.6, r"NA 1\.6 must be below the immersion index"),
        ("SimScope", "Structure", "bananas", r"'bananas' is not allowed.*microtubules"),
        ("Camera", "FrameSize", 127, r"frame size 127x127 is not allowed"),
        (
            "Light",
            "ExcitationPercent",
            -3,
            r"-3\.0 is not within the allowed range.*\(0\.0, 100\.0\)",
        ),
        ("SIMPattern", "PeriodNm", 150, r"SIM period 150\.0 nm is finer than the optics transmit"),
    ],
)
def test_bad_property_values_are_refused_with_a_clear_message(core, device, prop, value, message):
    before = core.getProperty(device, prop)
    with pytest.raises(Exception, match=message):
        core.setProperty(device, prop, value)
    assert core.getProperty(device, prop) == before


def test_unreadable_config_names_the_file_and_the_line(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text(
        "Property,Core,Initialize,0\n#py pyDevice,Cam,live_restore.devices,NoSuchCamera\n"
    )
    with pytest.raises(RuntimeError, match=r"bad\.cfg.*line 2.*NoSuchCamera"):
        load_core(bad)
    with pytest.raises(FileNotFoundError, match="config not found"):
        load_core(tmp_path / "missing.cfg")


def test_peripheral_without_a_hub_says_how_to_fix_the_config(tmp_path):
    cfg = tmp_path / "orphan.cfg"
    cfg.write_text(
        "#py pyDevice,Camera,live_restore.devices,SimCamera\n"
        "Property,Core,Initialize,1\n"
        "#py Property,Core,Camera,Camera\n"
    )
    mmc = load_core(cfg)
    try:
        with pytest.raises(
            Exception, match=r"not attached to a simulated microscope.*#py Parent,Camera"
        ):
            mmc.snapImage()
    finally:
        release_core(mmc)


def test_a_second_live_hub_with_the_same_label_is_refused(core):
    with pytest.raises(RuntimeError, match="already loaded in this process"):
        from live_restore.devices import _hubs

        _hubs.register("SimScope", SimMicroscope())
    # and after release, the label is free again
    hub = SimMicroscopeHub()
    assert microscope_of(core) is not hub.microscope


def test_mda_on_the_cpp_democamera_config(democam_core):
    sequence = Z_TIME_TWO_LIGHT_LEVELS
    frames = _run_collecting(democam_core, sequence)
    assert len(frames) == 12
    assert {img.shape for _, img in frames} == {(64, 64)}
    low = np.mean([img.mean() for ev, img in frames if ev.index["c"] == 0])
    high = np.mean([img.mean() for ev, img in frames if ev.index["c"] == 1])
    assert high > low
    assert democam_core.getPixelSizeUm() == pytest.approx(0.065)


def test_shutter_events_name_the_python_shutter_during_mda_and_live(core):
    # pymmcore-plus resolved setShutterOpen(state) through C++ MMCore, which does not know a
    # Python shutter: it emitted propertyChanged("", ...) and pymmcore-widgets raised on it
    import time

    import useq

    core.setAutoShutter(True)  # the engine then opens and closes the Python shutter
    devices = []
    core.events.propertyChanged.connect(lambda dev, prop, value: devices.append(dev))
    core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 2}))
    core.startContinuousSequenceAcquisition()
    time.sleep(0.1)
    core.stopSequenceAcquisition()
    assert "Light" in devices
    assert "" not in devices
