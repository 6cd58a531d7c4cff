"""Execute the analysts' notebook against a job's tables: ``python -m jobs.tools.notebook --conf ...``.

The notebook reads ``LAKESCORE_CONF`` to find the tables; this runs it top to bottom with
nbclient in the repo's environment and saves the executed copy (outputs and plots included).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "quality.ipynb"


def execute(conf: str, out: str | None = None, timeout: int = 300):
    """Run the notebook with ``conf``; returns the executed notebook (raises on a failing cell)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    os.environ["LAKESCORE_CONF"] = str(Path(conf).resolve())  # the kernel inherits our environment
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    if out:
        nbformat.write(nb, out)
    return nb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lakescore-notebook", description=__doc__.split("\n")[0])
    p.add_argument("--conf", default="conf/jobs/churn.yaml")
    p.add_argument("--out", default="build/quality.ipynb")
    args = p.parse_args(argv)
    execute(args.conf, args.out)
    print(f"executed {NOTEBOOK.relative_to(REPO)} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
