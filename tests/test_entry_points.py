"""The console scripts setup.cfg declares are installed and reach their commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

BIN = Path(sys.executable).parent
SCRIPTS = {
    "lakescore-score": "Score",
    "lakescore-demo": "demo",
    "lakescore-sql": "SQL",
    "lakescore-notebook": "notebook",
    "lakescore-submit-command": "spark-submit",
    "lakescore-promote": "champion",
    "lakescore-evaluate": "evaluat",
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_console_script_is_installed_and_prints_its_usage(script):
    out = subprocess.run([str(BIN / script), "--help"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: {script}")
    assert SCRIPTS[script].lower() in out.stdout.lower()


def test_lakescore_score_without_arguments_is_a_usage_error():
    out = subprocess.run([str(BIN / "lakescore-score")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2
    assert "--conf" in out.stderr
