"""Regenerate docs/img/ui-*.png: real runs of the bundled sample, served by `mgt ui`, in Chromium.

    python3 scripts/ui_screenshots.py [--out docs/img]

Runs the evolve cycle on the sample (recorded answers, one retried with
feedback), the support-desk example twice, a failing run, and a small
machine held in its second state so a live run can be shown; analyzes the
sample logs; then opens each page in headless Chromium (Debian's
/usr/bin/chromium through playwright) and saves a PNG of it. PR #2 is the
sample's PR record with the impact fields a measured PR carries (`verdict`,
`figures_before`, `figures_after`): the "before" figures are the analysis's
own, the "after" ones are illustrative.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
MAX_BYTES = 300_000

FAILING = """\
machine nightly_build "build and test the graph service"

state build:
    run command "echo 'building dmgraph'; echo 'error: test_dsl.py::test_inputs FAILED' >&2; exit 1"
    on done -> ok

final ok: succeed
"""

LIVE = """\
machine ingest "fetch, normalise and index a day of logs"

state fetch:
    run command "sleep 0.3; echo fetched 8049 events"
    on done -> normalise

state normalise:
    run command "while [ ! -f go ]; do sleep 0.1; done; echo normalised"
    on done -> index

state index:
    run command "echo indexed"
    on done -> ok

final ok: succeed "indexed"
"""


def mgt(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mgt", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=300)


#: The demo's own copy of the bundled machines and samples: its paths are what the pages show.
DEMO = Path(tempfile.gettempdir()) / "mgt-demo"
DEMO_PARTS = ("machines", "polecats", "formulas", "schemas", "examples", "mgt.toml")


def build(work: Path) -> tuple[Path, Path, Path, subprocess.Popen[str]]:
    for part in DEMO_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, work / part)
        else:
            shutil.copy2(source, work / part)
    runs = work / "runs"
    runs.mkdir()
    done = mgt("exec", "machines/evolve.mgt", "--runs-dir", "runs", "--executor", "replay",
               "--replay-dir", "examples/responses/retry", "--json", cwd=work)
    if done.returncode != 0:
        raise SystemExit(f"the evolve run failed: {done.stderr}")
    evolve_id = json.loads(done.stdout)["run_id"]
    support = "examples/support/support.mgt"
    mgt("exec", support, "--runs-dir", "runs",
        "--input", "ticket=Where is my order A-1001? It has been a week.", cwd=work)
    mgt("exec", support, "--runs-dir", "runs", "--executor",
        "replay:examples/support/responses/escalate",
        "--input", "ticket=My order A-1002 never arrived", cwd=work)
    (work / "nightly-build.mgt").write_text(FAILING)
    mgt("exec", "nightly-build.mgt", "--runs-dir", "runs", cwd=work)
    report = work / "report.json"
    analyzed = mgt("analyze", "--source", "examples/logs/tidepool-events.jsonl",
                   "--since", "all", "--nodes", "examples/logs/nodes.txt", "--json", cwd=work)
    report.write_text(analyzed.stdout)
    repo = runs / evolve_id / "target"
    prs = repo / ".git" / "mgt" / "prs"
    record: dict[str, Any] = json.loads((prs / "1.json").read_text())
    slow = next(p for p in json.loads(report.read_text())["patterns"]
                if p["id"] == "slow-llm-dmscene")["details"]
    measured = {
        **record, "number": 2, "state": "merged", "draft": False,
        "head": "sleeptime/2026-12-07-dmscene-prompt", "verdict": "improved",
        "figures_before": {"p95 latency (ms)": slow["p95_latency_ms"],
                           "mean latency (ms)": slow["mean_latency_ms"],
                           "prompt tokens (avg)": slow["prompt_tokens_avg"]},
        "figures_after": {"p95 latency (ms)": 3104.0, "mean latency (ms)": 2471.0,
                          "prompt tokens (avg)": 2208.0},
    }
    (prs / "2.json").write_text(json.dumps(measured, indent=2))
    (prs / "2.md").write_text(record.get("body", ""))
    (work / "ingest.mgt").write_text(LIVE)
    live = subprocess.Popen([sys.executable, "-m", "mgt", "exec", "ingest.mgt",
                             "--runs-dir", "runs"], cwd=work, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any((p / "states" / "normalise").is_dir() for p in runs.iterdir()):
        if time.monotonic() > deadline:
            raise SystemExit("the live run did not reach its second state")
        time.sleep(0.1)
    return runs, report, repo, live


def shoot(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    try:
        work = DEMO
        runs, report, repo, live = build(work)
        server = subprocess.Popen(
            [sys.executable, "-m", "mgt", "ui", "--port", "0", "--runs-dir", "runs",
             "--report", str(report.relative_to(work)), "--repo", str(repo.relative_to(work))],
            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            found = re.search(r"http://\S+", server.stdout.readline())
            if found is None:
                raise SystemExit("mgt ui did not start")
            url = found[0].rstrip("/")
            ids = sorted(p.name for p in runs.iterdir())
            evolve = next(i for i in ids if "-evolve-" in i)
            ingest = next(i for i in ids if "-ingest-" in i)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                shots = [
                    ("ui-runs.png", "/runs", None),
                    ("ui-run.png", f"/runs/{evolve}", None),
                    ("ui-run-attempts.png", f"/runs/{evolve}", "refine"),
                    ("ui-run-live.png", f"/runs/{ingest}", None),
                    ("ui-patterns.png", "/patterns", None),
                    ("ui-pr.png", "/prs/2", None),
                ]
                for name, path, scroll_to in shots:
                    page.goto(url + path)
                    if "live" not in name:  # a live page keeps its event stream open
                        page.wait_for_load_state("networkidle")
                    page.wait_for_timeout(600)
                    if scroll_to:
                        # the retried state, its rejected first attempt open
                        page.locator(f"article.state:has(h3:text-is('{scroll_to}'))")\
                            .scroll_into_view_if_needed()
                        page.locator("#states details.attempt").nth(3).locator("summary")\
                            .first.click()  # refine's attempt 2: the feedback it was sent
                        page.evaluate("window.scrollBy(0, -60)")
                        page.wait_for_timeout(200)
                    target = out / name
                    page.screenshot(path=str(target))
                    size = target.stat().st_size
                    print(f"{target}: {size // 1024} KB")
                    if size > MAX_BYTES:
                        raise SystemExit(f"{target} is over {MAX_BYTES // 1000} KB")
                browser.close()
        finally:
            (work / "go").touch()
            live.wait(timeout=60)
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=30)
    finally:
        shutil.rmtree(DEMO, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shoot(out)


if __name__ == "__main__":
    main()
