"""The basics tutorial's video programs (examples/basics), run as a user would, checked by what
they print. Here (no webcam, no screen) they use the test pattern and a FrameRecorder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "basics"

pytestmark = pytest.mark.slow


def run_example(name: str, seconds: float = 1.0) -> str:
    env = dict(os.environ, RTCBOT_EXAMPLE_SECONDS=str(seconds), PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, name], cwd=EXAMPLES, env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def frames_shown(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"(\d+) (?:black-and-white )?frames shown", output)]


@pytest.mark.parametrize("name", ["camera_callback.py", "camera_subscription.py", "video.py"])
def test_camera_to_display(name):
    out = run_example(name)
    (shown,) = frames_shown(out)
    assert shown >= 5, out  # about 30 a second
    assert "->" in out


def test_two_displays_each_get_the_feed():
    out = run_example("two_displays.py")
    first, second = frames_shown(out)
    assert first >= 5 and second >= 5, out


def test_black_and_white_video():
    pytest.importorskip("cv2")
    out = run_example("bwvideo.py")
    (shown,) = frames_shown(out)
    assert shown >= 5, out
    if "shape" in out:  # a FrameRecorder: grey frames have no colour axis
        assert "shape (240, 320)" in out, out
