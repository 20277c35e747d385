"""The benchmark runner works end to end in --quick mode (a smoke test: no figure is checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from benchmarks.cases import CASES

ROOT = Path(__file__).resolve().parent.parent
ROW_KEYS = [key for _name, keys, _case in CASES for key in keys]
HEADER = "| # | benchmark | value | target | result | runs |"


def test_quick_run_prints_every_row(tmp_path: Path) -> None:
    """`python -m benchmarks --quick --out FILE` exits 0 and prints a figure for every row."""
    out = tmp_path / "results.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=115,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert HEADER in done.stdout
    written = out.read_text()
    for key in ROW_KEYS:
        row = re.compile(
            rf"^\| {re.escape(key)} \| [^|]+ \| (?!error \|)[^|]+ \| [^|]+ \| [^|]+ \| \d+ \|$",
            re.MULTILINE,
        )
        assert row.search(done.stdout), f"row {key} missing or without a figure:\n{done.stdout}"
        assert row.search(written), f"row {key} missing from {out}"
    assert "Machine:" in written and "Command: `python -m benchmarks --quick" in written


def test_case_keys_are_unique() -> None:
    """Every row key names one figure: no two cases claim the same key."""
    assert len(ROW_KEYS) == len(set(ROW_KEYS))
