"""The GPS example (examples/gps/gps.py) against the pretend receiver of
examples/gps/fake_gps.py replaying a recorded session on a real pty."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("serial")
pytest.importorskip("pynmea2")
pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs ptys")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "gps"


def _fake_gps():
    spec = importlib.util.spec_from_file_location("fake_gps", EXAMPLES / "fake_gps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeGPS


def test_the_recording_is_the_tests_fixture():
    fixture = Path(__file__).parent / "fixtures" / "gps_session.nmea"
    assert (EXAMPLES / "session.nmea").read_bytes() == fixture.read_bytes()


def test_gps_example_prints_sentences_and_position():
    receiver = _fake_gps()(rate=50).start()
    try:
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "gps.py"), receiver.path, "12"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        receiver.stop()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    sentences, position, skipped = lines[:12], lines[12], lines[13]
    assert all(line.startswith("<") for line in sentences)
    assert any(line.startswith("<GGA(") for line in sentences)
    # every GGA/RMC of the recording is within a few metres of this point
    assert position.startswith("position: latitude=48.1173")
    assert "longitude=11.5166" in position
    assert skipped.startswith("skipped: {")
    assert "Traceback" not in done.stderr
