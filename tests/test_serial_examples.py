"""The Arduino tutorial programs (examples/arduino/) run against the pretend board of
examples/arduino/fake_arduino.py on a real pty, as a user would run them."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("serial")
pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs ptys")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "arduino"


def _fake_arduino():
    spec = importlib.util.spec_from_file_location("fake_arduino", EXAMPLES / "fake_arduino.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_arduino", module)
    spec.loader.exec_module(module)
    return module.FakeArduino


def run_example(name: str, port: str, *, via_env: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    args = [sys.executable, str(EXAMPLES / name)]
    if via_env:
        env["RTCBOT_SERIAL_PORT"] = port
    else:
        args.append(port)
    return subprocess.run(args, capture_output=True, text=True, timeout=30, env=env)


def test_basic_example_prints_the_echo():
    with _fake_arduino()("text", boot_delay=0.05) as board:
        done = run_example("basic.py", board.path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["I AM READY"] + [
            f"I received: {c}" for c in "Hello world!"
        ]
        assert bytes(board.received) == b"Hello world!"
        assert board.closed.wait(5), "the program should have closed the port"


def test_structs_example_prints_the_swapped_fields():
    with _fake_arduino()("struct", boot_delay=0.05) as board:
        done = run_example("structs.py", board.path, via_env=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["{'value1': 2, 'value2': 1003}"] * 3


def test_fake_arduino_as_a_program():
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "fake_arduino.py"), "text"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/")
        done = run_example("basic.py", port)
        assert done.returncode == 0, done.stderr
        assert "I received: H" in done.stdout.splitlines()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
