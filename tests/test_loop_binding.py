"""Objects created before any event loop work on whatever loop runs them (defect 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAMS = Path(__file__).resolve().parent / "programs"


def run(name: str) -> str:
    result = subprocess.run(
        [sys.executable, "-W", "error", str(PROGRAMS / name)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_module_level_objects_under_asyncio_run():
    out = run("module_level_asyncio_run.py")
    assert "output 0\noutput 1\noutput 2\n" in out
    assert out.endswith("clean exit\n")


def test_module_level_objects_under_aiohttp_run_app():
    out = run("module_level_run_app.py")
    assert out.count("output ") == 3
    assert out.endswith("clean exit\n")


def test_callback_only_producer_finds_a_bare_run_forever_loop():
    out = run("callbacks_run_forever.py")
    assert "frame 0\nframe 1\nframe 2\n" in out
    assert out.endswith("frames 3\n")
