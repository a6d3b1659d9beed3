"""The recording example (examples/recording), run as a user would: record.py records a
3-second session (a test pattern watched by a scripted operator who sends commands), then
replay.py prints what the recording holds and each command with the frame that was on screen."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "recording"

pytestmark = [pytest.mark.slow, pytest.mark.process]


def run(script: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """Run ``script`` of the example with ``args``; its stdout lines (fails on an error)."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / script), *args], cwd=EXAMPLE, capture_output=True,
        text=True, timeout=45, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout.splitlines()


def one(lines: list[str], pattern: str) -> re.Match[str]:
    matches = [m for line in lines if (m := re.fullmatch(pattern, line))]
    assert len(matches) == 1, (pattern, lines)
    return matches[0]


def test_record_then_replay_prints_the_session_in_step(tmp_path):
    recorded = run("record.py", str(tmp_path / "rec"), "3")
    done = one(recorded, r"Recorded (\d+) frames and (\d+) messages to (\S+) and (\S+)")
    frames, messages = int(done.group(1)), int(done.group(2))
    assert Path(done.group(3)) == tmp_path / "rec" / "session.mkv"
    assert (tmp_path / "rec" / "session.mkv").stat().st_size > 0
    assert (tmp_path / "rec" / "session.jsonl").exists()
    sent = [ast.literal_eval(m.group(1)) for line in recorded
            if (m := re.fullmatch(r"Robot got: (.*)", line))]
    assert len(sent) == messages >= 4  # a command every ten frames, for 3 s at 30 fps
    assert frames >= 45

    # As fast as it can (speed 0), then in real time, through $RECORDING_DIR.
    for replayed in (
        run("replay.py", str(tmp_path / "rec"), "0"),
        run("replay.py", env={"RECORDING_DIR": str(tmp_path / "rec")}),
    ):
        assert one(replayed, r"Tracks: (.*)").group(1) == "front"
        assert int(one(replayed, r"Frames \(front\): (\d+)").group(1)) == frames
        duration = float(one(replayed, r"Duration: ([\d.]+) s").group(1))
        assert 2.0 <= duration <= 3.5
        assert int(one(replayed, r"Messages: (\d+)").group(1)) == messages
        assert int(one(replayed, r"Replayed (\d+) frames").group(1)) == frames
        shown = [m for line in replayed if (m := re.fullmatch(
            r" *([\d.]+) s  \[default\]  (\{.*\})  \(on screen: frame (\d+)\)", line))]
        commands = [ast.literal_eval(m.group(2)) for m in shown]
        assert commands == sent
        times = [float(m.group(1)) for m in shown]
        # within the session; the last message may follow the last frame by a few ms
        assert times == sorted(times) and 0 < times[0] and times[-1] <= duration + 1 / 30
        # in step: each command comes with the frame the operator had just seen (or the next
        # one, captured while the command was on its way)
        for match, command in zip(shown, commands, strict=True):
            assert 0 <= int(match.group(3)) - command["seen"] <= 3, (match.group(0), command)
