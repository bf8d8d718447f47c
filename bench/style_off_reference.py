"""The report of before issue 24, for the test that ``style_control: none`` reproduces it byte for byte.

    python bench/style_off_reference.py [--commit 7793621]   # writes tests/data/style_off_report.csv

Source: this repository's own code at ``--commit`` (the last commit before style control; extracted with
``git archive`` into a temporary folder, the working tree untouched), run as a real pytest session on
``tests/support/style_arena.py``'s arena (answers from files, the loopback judge of ``tests/support``
preferring the longer answer), with no ``style_control`` key (that code has none). The test runs the same
arena with today's code and ``style_control: none`` and compares the two CSV files byte for byte.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.arena_project import FAKE_KEY, OWN_MARKERS  # noqa: E402
from support.judge_server import JudgeServer, prefer_longer  # noqa: E402
from support.style_arena import write_style_arena  # noqa: E402

OUT = ROOT / "tests" / "data" / "style_off_report.csv"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", default="7793621")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = tmp / "code.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), args.commit, "pytest_arena", "arena_tests"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp / "code", filter="data")
        project = tmp / "project"
        project.mkdir()
        with JudgeServer(reply=prefer_longer(**OWN_MARKERS)) as server:
            config = write_style_arena(project, server.base_url)
            (project / "cfg.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
            env = dict(os.environ, PYTHONPATH=str(tmp / "code"), OPENAI_API_KEY=FAKE_KEY)
            env.pop("OPENAI_BASE_URL", None)
            check = subprocess.run([sys.executable, "-c", "import pytest_arena; print(pytest_arena.__file__)"],
                                   cwd=project, env=env, capture_output=True, text=True, check=True)
            print(f"code under test: {check.stdout.strip()} (commit {args.commit})")
            run = subprocess.run([sys.executable, "-m", "pytest", "--arena-config", "cfg.yaml", "-q", "-p", "no:cacheprovider"],
                                 cwd=project, env=env, capture_output=True, text=True)
            print(run.stdout[-3000:], run.stderr[-2000:])
        OUT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(project / "reports" / "rating.csv", OUT)
    print(f"wrote {OUT}")
    print(OUT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
