import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.net"))
YAML_SPECS = sorted((ROOT / "specs" / "yaml").glob("*.yaml"))


@pytest.fixture
def in_root(monkeypatch):
    """Run with the repository root as working directory (relative paths in outputs)."""
    monkeypatch.chdir(ROOT)
    return ROOT
