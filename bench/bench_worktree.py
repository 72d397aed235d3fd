"""Benchmark: a scratch worktree of a user's repository vs the full clone the cycle used to make.

A generated repository of N files (one commit) stands for a user's project.
Times `scratch_worktree` (add, then remove and prune: what each guardrail check
and open-pr does), `prune_stale_worktrees` with nothing stale (what every
evolve step pays), and a `git clone --no-hardlinks` (what prepare-repo did per
run before). Prints figures; it is not a test and asserts nothing.

    python bench/bench_worktree.py [--files N] [--repeat R]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mgt.evolve.git import prune_stale_worktrees, scratch_worktree


def make_repo(where: Path, files: int) -> Path:
    repo = where / "repo"
    for n in range(files):
        path = repo / f"dir{n % 50}" / f"file{n}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"line {n}\n" * 40, encoding="utf-8")
    for args in (["init", "--quiet", "-b", "main"], ["add", "--all"],
                 ["-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "--quiet",
                  "-m", "generated"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    return repo


def timed(fn: Callable[[], None], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp), args.files)

        def worktree() -> None:
            with scratch_worktree(repo, "main"):
                pass

        def clone() -> None:
            dest = Path(tmp) / "clone"
            subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(repo), str(dest)],
                           check=True)
            shutil.rmtree(dest)

        for name, fn in (("worktree add+remove", worktree),
                         ("prune (nothing stale)", lambda: prune_stale_worktrees(repo)),
                         ("clone --no-hardlinks", clone)):
            times = timed(fn, args.repeat)
            print(f"{name:24} {args.files} files: median {statistics.median(times) * 1000:7.1f} ms"
                  f"  (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")


if __name__ == "__main__":
    main()
