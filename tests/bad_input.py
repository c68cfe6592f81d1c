"""Helpers for the bad-input tests (unit and cluster): submit as a user, and check the one `Error:` line."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import run_cli

TIMEOUT = 60  # every bad input must be refused well within this

GOOD_JOB = (
    "import raysched\n"
    "def work(i):\n    return {'items': 1}\n"
    "def tasks():\n    for i in range(3):\n        yield raysched.Task(work, args=(i,))\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def error_line(result) -> str:
    """The single `Error:` line on stderr, after checking the bad-input contract."""
    assert "Traceback" not in result.text, result.text
    assert result.code == 2, result.text
    lines = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.err
    return lines[0]


def assert_bad_input(result, *words: str) -> str:
    line = error_line(result)
    for word in words:
        assert word.lower() in line.lower(), (word, line)
    return line


def submit(*args: str, timeout: float = TIMEOUT):
    started = time.monotonic()
    result = run_cli("submit", *args, "--quiet", timeout=timeout)
    result.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    return result


def failing_job(tmp_path: Path, count: int, bad: str) -> Path:
    return write(
        tmp_path / "failing.py",
        "import raysched\n"
        "def work(i):\n"
        f"    if {bad}:\n"
        "        raise ValueError(f'bad row {i}')\n"
        "    return {'items': 1}\n"
        "def tasks():\n"
        f"    for i in range({count}):\n"
        "        yield raysched.Task(work, args=(i,))\n",
    )
