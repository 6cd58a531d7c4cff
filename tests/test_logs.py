"""Job logging: every line names the run, JSON lines parse, and a replaced stderr is followed."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from jobs.logs import set_run_id, setup_logging


@pytest.fixture
def lakescore_logger():
    logger = logging.getLogger("lakescore")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield logger.getChild("test")
    logger.handlers[:], logger.level, logger.propagate = saved
    set_run_id("-")


def test_text_lines_carry_the_run_id(lakescore_logger, monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    setup_logging("text")
    set_run_id("run-42")
    lakescore_logger.info("scoring %s", "ds=2024-06-01")
    line = sys.stderr.getvalue().strip()
    assert line.endswith("INFO [run-42] lakescore.test: scoring ds=2024-06-01")


def test_json_lines_parse(lakescore_logger, monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    setup_logging("json")
    set_run_id("run-7")
    lakescore_logger.warning("gate %s", "warn")
    record = json.loads(sys.stderr.getvalue())
    assert (record["level"], record["run_id"], record["logger"], record["message"]) == (
        "WARNING",
        "run-7",
        "lakescore.test",
        "gate warn",
    )


def test_a_stderr_replaced_and_closed_after_setup_is_not_written_to(lakescore_logger, monkeypatch):
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging("text")
    first.close()  # what pytest does to a test's captured stream, and a notebook kernel on restart
    monkeypatch.setattr(sys, "stderr", second)
    monkeypatch.setattr(logging, "raiseExceptions", True)
    lakescore_logger.info("after the swap")
    lines = second.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("lakescore.test: after the swap"), lines  # not "--- Logging error ---"
