"""The layout's rules, checked: the pure layer imports nothing from the orchestration package, and no
module grows past the size a reader can hold."""

from __future__ import annotations

import ast

import pytest

from tests.helpers import REPO

MAX_LINES = 400


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((REPO / "transforms").glob("*.py")), ids=lambda p: p.name)
def test_transforms_import_nothing_from_jobs(path):
    assert not {n for n in _imports(path) if n == "jobs" or n.startswith("jobs.")}


def test_no_module_of_the_job_is_longer_than_the_limit():
    modules = [p for d in ("jobs", "transforms", "bench") for p in (REPO / d).rglob("*.py")]
    assert modules
    long = {str(p.relative_to(REPO)): n for p in modules if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
