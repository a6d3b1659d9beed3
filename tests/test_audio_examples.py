"""The basics tutorial's sound programs (examples/basics), run as a user would through the
PulseAudio null sink (the microphone hears the sink's monitor), checked by what they print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.pulse import pulseaudio  # noqa: F401  (the fixture)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "basics"

pytestmark = [pytest.mark.slow, pytest.mark.audio, pytest.mark.usefixtures("pulseaudio")]


def run_example(name: str, seconds: float = 1.5) -> str:
    env = dict(os.environ, RTCBOT_EXAMPLE_SECONDS=str(seconds), PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, name], cwd=EXAMPLES, env=env, capture_output=True, text=True,
        timeout=60,
    )
    # A crash while the sound library shuts down would show as a signal (negative code).
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Assertion" not in result.stderr, result.stderr
    return result.stdout


def seconds_played(output: str) -> float:
    match = re.search(r"([0-9.]+) s of (?:louder )?sound", output)
    assert match, output
    return float(match.group(1))


@pytest.mark.parametrize("name", ["audio.py", "audiolouder.py"])
def test_microphone_to_speaker(name):
    out = run_example(name)
    assert seconds_played(out) >= 0.5, out


def test_video_and_audio_together():
    out = run_example("both.py")
    assert seconds_played(out) >= 0.5, out
    frames = int(re.search(r"(\d+) frames shown", out).group(1))
    assert frames >= 5, out
