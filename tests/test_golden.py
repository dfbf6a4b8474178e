"""Golden diagnostics: each invalid spec in tests/golden/ with the exact stderr of `netspec check`.

Each case is ``NAME.net`` (or ``NAME.yaml``) beside ``NAME.err``. The CLI runs
in-process from the repository root, so the .err files name the spec by its
relative path ``tests/golden/NAME.net``. The exit status must be 1 (spec
errors), or 2 when every diagnostic is a usage error (E001 cannot read, E002
unsupported file type).

After a deliberate change to a message, regenerate and review every diff:

    NETSPEC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from netspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("NETSPEC_UPDATE_GOLDEN") == "1"
USAGE_CODES = {"E001", "E002"}

CASES = sorted(p for p in GOLDEN.iterdir() if p.suffix in (".net", ".yaml", ".yml"))


def expected_status(err: str) -> int:
    codes = set(re.findall(r"error\[(E\d{3})\]", err))
    return 2 if codes and codes <= USAGE_CODES else 1


def test_enough_cases():
    assert len(CASES) >= 35
    names = [p.stem for p in CASES]
    assert len(names) == len(set(names)), "one spec per case name"


@pytest.mark.parametrize("spec", CASES, ids=lambda p: p.name)
def test_golden(spec: Path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rel = spec.relative_to(ROOT).as_posix()
    status = main(["check", rel])
    captured = capsys.readouterr()
    err_file = spec.with_suffix(".err")
    if UPDATE:
        err_file.write_text(captured.err, encoding="utf-8")
    assert err_file.exists(), f"no golden output for {spec.name}; run with NETSPEC_UPDATE_GOLDEN=1"
    expected = err_file.read_text(encoding="utf-8")
    assert captured.err == expected
    assert captured.out == "", "an invalid spec prints no report"
    assert status == expected_status(expected)
    assert status != 0


def test_no_orphan_err_files():
    stems = {p.stem for p in CASES}
    orphans = [p.name for p in GOLDEN.glob("*.err") if p.stem not in stems]
    assert not orphans, f".err files without a spec: {orphans}"


def test_diagnostics_md_quotes_golden_files():
    """Each `<!-- golden: NAME -->` example in docs/diagnostics.md is NAME's spec and exact output."""
    doc = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    quoted = re.findall(r"<!-- golden: (\w+) -->\n(.*?)(?=^#{2,3} |<!-- golden:|\Z)", doc, re.S | re.M)
    assert quoted, "docs/diagnostics.md quotes no golden file"
    for name, body in quoted:
        spec = next(p for p in CASES if p.stem == name)
        outputs = re.findall(r"^```text\n(.*?)^```", body, re.S | re.M)
        assert outputs and outputs[-1] == spec.with_suffix(".err").read_text(encoding="utf-8"), name
        sources = re.findall(r"^```(?:net|yaml)\n(.*?)^```", body, re.S | re.M)
        assert all(s == spec.read_text(encoding="utf-8") for s in sources), name
