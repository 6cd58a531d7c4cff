"""Print the spark-submit commands for a packaged LakeScore: ``python -m jobs.tools.submit_command``.

``make package`` calls it after building the wheel and the environment archive, so the commands
name the files it just built.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from jobs.tables.jars import DELTA_PACKAGES, DELTA_SQL_CONF


def commands(wheel: str, env: str, conf: str, partition: str = "ds=2024-06-01", master: str = "yarn") -> dict[str, list[str]]:
    """The two spark-submit command lines (native and embedded Delta engine), as argument lists."""
    conf_name = Path(conf).name
    common = [
        "spark-submit",
        "--master",
        master,
        "--deploy-mode",
        "cluster",
        "--archives",
        f"{env}#environment",
        "--conf",
        "spark.pyspark.python=./environment/bin/python",
        "--py-files",
        wheel,
        "--files",
        conf,
    ]
    job = ["jobs/score.py", "--conf", conf_name, "--partition", partition]
    native = [
        *common,
        "--packages",
        DELTA_PACKAGES,
        *[arg for key, value in DELTA_SQL_CONF.items() for arg in ("--conf", f"{key}={value}")],
        *job,
        "--set",
        "engine=native",
    ]
    embedded = [*common, *job, "--set", "engine=embedded"]
    return {
        "native Delta engine (delta-spark jars from Maven or on the cluster)": native,
        "embedded Delta engine (no jars)": embedded,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lakescore-submit-command", description=__doc__.split("\n")[0])
    p.add_argument("--wheel", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--conf", required=True)
    p.add_argument("--partition", default="ds=2024-06-01")
    p.add_argument("--master", default="yarn")
    args = p.parse_args(argv)
    print(f"\nbuilt {args.wheel} and {args.env}\n")
    for title, argv_ in commands(args.wheel, args.env, args.conf, args.partition, args.master).items():
        print(f"# {title}")
        print(
            " \\\n    ".join(
                shlex.join(argv_[i : i + 2]) if argv_[i].startswith("--") else shlex.quote(argv_[i]) for i in _starts(argv_)
            )
        )
        print()
    return 0


def _starts(argv: list[str]) -> list[int]:
    """Indexes where a printed line starts: an option with its value stays on one line."""
    out, i = [], 0
    while i < len(argv):
        out.append(i)
        i += 2 if argv[i].startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--") else 1
    return out


if __name__ == "__main__":
    sys.exit(main())
