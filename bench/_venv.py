"""Create, idempotently, the virtualenv that holds the original RTCBot 0.2.5 for baselines.

``python bench/_venv.py`` creates ``bench/.venv-rtcbot025`` (gitignored) with
``pip install rtcbot==0.2.5`` from PyPI and prints the path of its interpreter. A second run
only checks that ``import rtcbot.base`` works there and does nothing else.

The benchmarks import :func:`ensure_rtcbot025` to get that interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
VENV_DIR = BENCH_DIR / ".venv-rtcbot025"
REQUIREMENT = "rtcbot==0.2.5"
# Written after a successful install; its content is the requirement it was made for.
STAMP = VENV_DIR / ".rtcbot-bench-ok"
# Checks that the original is importable and is the version we asked for.
_CHECK = (
    "import importlib.metadata as m, rtcbot.base; "
    "assert m.version('rtcbot') == '0.2.5', m.version('rtcbot')"
)


def venv_python(venv_dir: Path = VENV_DIR) -> Path:
    """The interpreter of ``venv_dir``."""
    return venv_dir / "bin" / "python"


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    result = subprocess.run(
        [str(python), "-P", "-c", _CHECK],  # -P: no bench/ module may shadow an installed one
        capture_output=True,
        timeout=120,
        check=False,
        # Run from the bench folder so that no checkout's src/ shadows the installed package.
        cwd=BENCH_DIR,
        env=_clean_env(),
    )
    return result.returncode == 0


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


def ensure_rtcbot025(*, quiet: bool = True) -> Path:
    """Return the interpreter of a venv with RTCBot 0.2.5, creating the venv if needed.

    Idempotent: a venv that already has a working RTCBot 0.2.5 is left as it is.
    """
    python = venv_python()
    if STAMP.exists() and STAMP.read_text().strip() == REQUIREMENT and _works(python):
        return python
    out = subprocess.DEVNULL if quiet else None
    if not python.exists():
        # with_pip: the venv gets its own pip, so the install never touches this interpreter.
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV_DIR)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", REQUIREMENT],
        check=True,
        stdout=out,
        timeout=900,
        env=_clean_env(),
    )
    if not _works(python):
        raise RuntimeError(f"{REQUIREMENT} installed in {VENV_DIR} but `import rtcbot.base` fails")
    STAMP.write_text(REQUIREMENT + "\n")
    return python


if __name__ == "__main__":
    print(ensure_rtcbot025(quiet="-v" not in sys.argv[1:]))
