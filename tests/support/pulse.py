"""A PulseAudio server with a null sink for sound tests: ``Speaker`` plays into the sink,
``Microphone`` records its monitor, so what one plays the other hears.

Import as ``from support.pulse import pulseaudio`` (``tests/`` is on ``sys.path``) or list
``"support.pulse"`` in ``pytest_plugins``; then mark tests
``@pytest.mark.usefixtures("pulseaudio")`` (with ``@pytest.mark.audio``). The server is
started once by ``tests/support/pulse.sh`` (which does nothing if it runs already) and left
running for later sessions.

Without PulseAudio (or sounddevice and PortAudio) installed the tests are skipped, except under
CI (``$CI`` set), where that is a failure: a missing install step must not pass as green.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("pulse.sh")

__all__ = ["SCRIPT", "pulseaudio", "start_pulseaudio"]


def start_pulseaudio() -> str:
    """Start (or find) the test server; return its ``PULSE_SERVER`` address. Raises
    ``RuntimeError`` if it cannot start."""
    result = subprocess.run(
        ["sh", str(SCRIPT)], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"pulse.sh failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout.strip()


@pytest.fixture(scope="session")
def pulseaudio() -> str:
    """The ``PULSE_SERVER`` address of a running test server, also set in ``os.environ`` so
    sound libraries (and child processes) use it."""
    message = None
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        message = "PulseAudio is not installed (apt-get install -y pulseaudio pulseaudio-utils)"
    else:
        try:
            import sounddevice  # noqa: F401
        except (ImportError, OSError) as exc:
            message = f"sounddevice/PortAudio missing ({exc}): pip install sounddevice; " \
                      "apt-get install -y libportaudio2 libasound2-plugins"
    if message is not None:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = start_pulseaudio()
    os.environ["PULSE_SERVER"] = server
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        # PortAudio lists devices when it starts; restart it to see the server's devices.
        sd._terminate()
        sd._initialize()
    return server
