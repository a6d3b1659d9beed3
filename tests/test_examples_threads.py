"""The seed tutorial's programs, run as a user would, checked by what they print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "threads"

pytestmark = pytest.mark.slow


def run_example(name: str, seconds: float) -> str:
    env = dict(os.environ, RTCBOT_EXAMPLE_SECONDS=str(seconds), PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, name], cwd=EXAMPLES, env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def longest_stall_ms(output: str) -> float:
    match = re.search(r"longest video stall: (\d+) ms", output)
    assert match, output
    return float(match.group(1))


def readings(output: str) -> list[float]:
    return [float(x) for x in re.findall(r"sensor: ([0-9.e-]+)", output)]


def test_bad_sensor_freezes_the_loop():
    out = run_example("bad_sensor.py", 3.2)
    assert len(readings(out)) >= 2
    assert longest_stall_ms(out) >= 450  # the 0.5 s read ran on the loop


def test_threaded_sensor_keeps_the_loop_free():
    out = run_example("threaded_sensor.py", 4.0)
    values = readings(out)
    assert len(values) >= 2 and all(0 <= v < 1 for v in values)
    assert longest_stall_ms(out) < 450  # never the sensor's half second


def test_threaded_output_uses_values_in_order_without_blocking():
    out = run_example("threaded_output.py", 2.5)
    lines = out.splitlines()
    assert lines[0] == "queued 3 values"  # put_nowait returned at once
    outputs = re.findall(r"output: (\d+)", out)
    assert outputs[:3] == ["0", "1", "2"][: len(outputs)] and len(outputs) >= 3
    assert longest_stall_ms(out) < 450
