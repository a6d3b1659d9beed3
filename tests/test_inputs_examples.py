"""The local input examples (examples/inputs/) on a machine without input devices: a clear
error naming what was searched, not an IndexError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("evdev")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "inputs"


@pytest.mark.skipif(os.path.isdir("/dev/input"), reason="this machine has input devices")
@pytest.mark.parametrize("kind", ["gamepad", "keyboard", "mouse"])
def test_example_without_a_device_says_what_it_searched(kind):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{kind}.py")], capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"rtcbot.devices.inputs.NoInputDeviceError: no {kind} number 0")
    assert "/dev/input" in last
    assert "IndexError" not in done.stderr
