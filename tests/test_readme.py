"""The README's code runs as shown."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_producer_consumer_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README shows a producer and a consumer"
    result = subprocess.run([sys.executable, "-W", "error", "-c", blocks[0]],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 3 and all(line.startswith("motor setpoint ") for line in lines)
