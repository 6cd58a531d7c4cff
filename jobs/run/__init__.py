"""A scoring run: its context and plan, the stages of one partition, the orchestrator, and what it ends with."""

from jobs.run.orchestrator import run
from jobs.run.outcome import EXIT_FAILED, EXIT_GATE, EXIT_OK, EXIT_USAGE, RunResult

__all__ = ["EXIT_FAILED", "EXIT_GATE", "EXIT_OK", "EXIT_USAGE", "RunResult", "run"]
