"""`mgt ui` end to end: a real server process, real runs, pages in a real headless Chromium."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mgt.ui import views
from tests.runtime.procs import spawn, wait_for
from tests.ui.data import SECRET, SLOW, XSS_SCRIPT, Runs
from tests.ui.server import CHROMIUM, CHROMIUM_ARGS, Server, need_chromium, serving

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_chromium()
    from playwright.sync_api import expect as pw_expect
    from playwright.sync_api import sync_playwright

    pw_expect.set_options(timeout=TIMEOUT_MS)  # a loaded CI machine is slow, not wrong
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(runs: Runs, report_file: Path, repo: Path) -> Iterator[Server]:
    with serving("--runs-dir", runs.runs_dir, "--report", report_file, "--repo", repo,
                 cwd=runs.root) as started:
        yield started


class Dialogs(list[str]):
    """Every alert/confirm a page opened: an XSS that ran. Checked after each test."""


@pytest.fixture
def dialogs() -> Dialogs:
    return Dialogs()


@pytest.fixture
def page(browser: Any, dialogs: Dialogs) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        yield page
    finally:
        context.close()
    assert not dialogs, f"a script from the data ran: dialogs {dialogs}"
    assert not errors, f"JavaScript errors on the page: {errors}"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def q(run_id: str) -> str:
    return urllib.request.quote(run_id, safe="")


# ---------------------------------------------------------------- the runs list and a run


def test_the_runs_list_shows_every_run_and_filters_them(page: Any, server: Server,
                                                        runs: Runs) -> None:
    page.goto(f"{server.url}/runs")
    rows = page.locator("#runs tbody tr")
    expect(rows).to_have_count(5)
    ok_row = page.locator(f'#runs tr[data-run="{runs.ok}"]')
    expect(ok_row).to_contain_text("succeeded")
    expect(ok_row).to_contain_text("greet")
    expect(ok_row).to_contain_text("$0.0000")
    page.select_option("#filter-status", "failed")
    page.click("form.filters button")
    page.wait_for_url("**/runs?status=failed*")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(runs.failed)
    page.click(f"text={runs.failed}")
    expect(page.locator("h1")).to_contain_text(runs.failed)
    expect(page.locator("#run-status")).to_have_text("failed")


def test_a_finished_run_shows_its_graph_attempts_and_masked_inputs(page: Any, server: Server,
                                                                   runs: Runs) -> None:
    response = page.goto(f"{server.url}/runs/{runs.ok}")
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("#live-note")).to_be_hidden()
    graph = page.locator("#run-graph")
    expect(graph).to_be_visible()
    page.wait_for_function("() => document.getElementById('run-graph').naturalWidth > 0")
    expect(page.locator("#run-path")).to_have_text("hello → bye → ok")
    attempt = page.locator("#state-1 details.attempt").first
    expect(attempt).not_to_have_attribute("open", "")
    attempt.locator("summary").first.click()
    answer = attempt.locator("details.part", has_text="Answer")
    answer.locator("summary").click()
    expect(answer.locator("pre")).to_have_text("hello Ada\n")
    expect(page.locator("table.kv")).to_contain_text("••••••@example.com/hook")
    assert SECRET not in page.content()


def test_a_failed_attempt_is_open_with_its_error(page: Any, server: Server, runs: Runs) -> None:
    page.goto(f"{server.url}/runs/{runs.failed}")
    attempt = page.locator("details.attempt").first
    expect(attempt).to_have_attribute("open", "")
    expect(attempt.locator(".error")).to_be_visible()
    expect(attempt.locator(".outcome").first).to_have_text("error")


def test_a_running_run_advances_on_the_page_without_a_reload(page: Any, browser: Any,
                                                             tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "slow.mgt").write_text(SLOW)
    run = spawn("exec", tmp_path / "slow.mgt", "--runs-dir", "runs", cwd=tmp_path)
    try:
        runs_dir = tmp_path / "runs"

        def in_state_one() -> bool:
            found = [p for p in runs_dir.iterdir() if (p / "states" / "one").is_dir()]
            return bool(found)

        wait_for("the run to enter state one", in_state_one, run)
        run_id = next(p.name for p in runs_dir.iterdir() if not p.name.startswith("."))
        with serving("--runs-dir", runs_dir, cwd=tmp_path) as ui:
            page.goto(f"{ui.url}/runs/{run_id}")
            expect(page.locator("#run-status")).to_have_text("running")
            expect(page.locator("#live-note")).to_be_visible()
            expect(page.locator("#run-current")).to_have_text("one")
            assert [r.status for r in views.run_rows(runs_dir)[0]] == ["running"]
            page.evaluate("window.__notReloaded = true")
            first_graph = page.get_attribute("#run-graph", "src")

            (tmp_path / "go1").touch()
            expect(page.locator("#run-current")).to_have_text("two")
            expect(page.locator('#states tr[data-state="one"] .outcome')).to_have_text("done")
            expect(page.locator('#states tr[data-state="two"]')).to_have_class("current")
            assert page.get_attribute("#run-graph", "src") != first_graph

            (tmp_path / "go2").touch()
            expect(page.locator("#run-status")).to_have_text("succeeded")
            expect(page.locator("#run-final")).to_have_text("ok")
            expect(page.locator("#run-path")).to_have_text("one → two → three → ok")
            expect(page.locator('#states tr[data-state="three"]')).to_be_visible()
            expect(page.locator("#live-note")).to_have_text("run ended")
            assert page.evaluate("window.__notReloaded") is True
            page.wait_for_function("() => document.getElementById('run-graph').naturalWidth > 0")
            page.goto(f"{ui.url}/runs")
            expect(page.locator(f'#runs tr[data-run="{run_id}"] .status')).to_have_text(
                "succeeded")  # a running run's row is read again, not kept
        assert run.wait(timeout=60) == 0
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()


def test_a_run_whose_process_dies_turns_interrupted_on_the_page(page: Any,
                                                                tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "slow.mgt").write_text(SLOW)
    run = spawn("exec", tmp_path / "slow.mgt", "--runs-dir", "runs", cwd=tmp_path)
    try:
        runs_dir = tmp_path / "runs"
        wait_for("the run to enter state one",
                 lambda: any((p / "states" / "one").is_dir() for p in runs_dir.iterdir()), run)
        run_id = next(p.name for p in runs_dir.iterdir() if not p.name.startswith("."))
        with serving("--runs-dir", runs_dir, cwd=tmp_path) as ui:
            page.goto(f"{ui.url}/runs/{run_id}")
            expect(page.locator("#run-status")).to_have_text("running")
            run.send_signal(signal.SIGKILL)  # no run_finished, no run_interrupted: just gone
            run.wait(timeout=60)
            # the events file does not grow; the stream reads the run again on its own
            expect(page.locator("#run-status")).to_have_text("interrupted")
            expect(page.locator("#live-note")).to_have_text("run ended")
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()


# ---------------------------------------------------------------- patterns and pull requests


def test_the_patterns_page_draws_its_charts_and_table(page: Any, server: Server,
                                                      report_file: Path) -> None:
    import json

    report = json.loads(report_file.read_text())
    page.goto(f"{server.url}/patterns")
    expect(page.locator("#patterns > tbody > tr")).to_have_count(len(report["patterns"]))
    expect(page.locator('tr[data-pattern="slow-llm-dmscene"]')).to_contain_text("906")
    drawn = page.evaluate(
        "['chart-latency', 'chart-errors', 'chart-types']"
        ".map(id => { const c = window.Chart.getChart(id); return c ? c.data.labels : null; })"
    )
    assert drawn[0][:2] == ["dmScene", "dmAftermath"]
    assert any("repeated-error-xss" in label for label in drawn[1])
    assert "slow_llm" in drawn[2]


def test_a_runs_pattern_report_is_linked_from_its_state(page: Any, server: Server,
                                                        runs: Runs) -> None:
    page.goto(f"{server.url}/runs/{runs.scan}")
    page.click("text=PatternReport →")
    expect(page.locator("h1")).to_contain_text(f"{runs.scan} · analyze")
    expect(page.locator('tr[data-pattern="slow-llm-dmscene"]')).to_be_visible()
    page.wait_for_function("() => !!(window.Chart && window.Chart.getChart('chart-latency'))")
    assert page.goto(f"{server.url}/runs/{runs.ok}/patterns/hello").status == 404


def test_a_pull_request_with_a_verdict_shows_its_before_and_after(page: Any,
                                                                  server: Server) -> None:
    page.goto(f"{server.url}/prs")
    row = page.locator('#prs tr[data-pr="2"]')
    expect(row).to_contain_text("improved")
    expect(row).to_contain_text("slow-llm-dmscene")
    expect(page.locator('#prs tr[data-pr="1"]')).to_contain_text("not measured")
    row.locator("a").nth(1).click()
    expect(page.locator("#pr-verdict")).to_have_text("improved")
    expect(page.locator("#impact")).to_contain_text("slow-llm-dmscene slow_share")
    expect(page.locator("#impact")).to_contain_text("-87%")
    page.wait_for_function("() => !!(window.Chart && window.Chart.getChart('chart-impact'))")
    chart = page.evaluate(
        "(() => { const c = window.Chart.getChart('chart-impact');"
        " return c && c.data.datasets.map(d => [d.label, d.data]); })()"
    )
    assert chart == [["before", [0.93, 0.8]], ["after", [0.12, 0.05]]]


# ---------------------------------------------------------------- hostile data


INJECTED = "#xss-img, #xss-svg, img[src='x'], [onerror], [onload]"


def _assert_nothing_ran(page: Any) -> None:
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    page.wait_for_timeout(300)  # let an injected image fail to load, were there one
    assert page.evaluate("window.__xss") is None
    assert page.locator(INJECTED).count() == 0
    scripts = page.evaluate(
        "[...document.scripts].map(s => s.src ? new URL(s.src).pathname : s.type)"
    )
    assert all(s.startswith("/static/") or s == "application/json" for s in scripts), scripts


def test_markup_in_outputs_answers_prompts_inputs_and_file_names_is_shown_not_run(
    page: Any, server: Server, runs: Runs, dialogs: Dialogs
) -> None:
    page.goto(f"{server.url}/runs/{runs.hostile}")
    _assert_nothing_ran(page)
    text = page.locator("#states").inner_text()
    assert XSS_SCRIPT in text  # shown, as text
    assert "<img src=x onerror=alert(7)>.txt" in text
    expect(page.locator("table.kv")).to_contain_text("<svg id=xss-svg")
    assert dialogs == []


def test_a_run_id_made_of_markup_is_shown_not_run(page: Any, server: Server, runs: Runs) -> None:
    page.goto(f"{server.url}/runs")
    _assert_nothing_ran(page)
    page.click(f'#runs tr[data-run="{runs.hostile_copy.replace(chr(34), chr(92) + chr(34))}"] a')
    expect(page.locator("h1")).to_contain_text(runs.hostile_copy)
    _assert_nothing_ran(page)
    page.wait_for_function("() => document.getElementById('run-graph').naturalWidth > 0")


def test_markup_in_a_report_and_in_pr_records_is_shown_not_run(page: Any,
                                                               server: Server) -> None:
    page.goto(f"{server.url}/patterns")
    _assert_nothing_ran(page)
    expect(page.locator('tr[data-pattern="repeated-error-xss"] td.rec')).to_contain_text(
        XSS_SCRIPT)
    page.goto(f"{server.url}/prs")
    _assert_nothing_ran(page)
    page.goto(f"{server.url}/prs/3")
    _assert_nothing_ran(page)
    expect(page.locator("h1")).to_contain_text(XSS_SCRIPT)
    expect(page.locator("pre.body")).to_contain_text(XSS_SCRIPT)


# ---------------------------------------------------------------- access


def test_off_loopback_every_request_needs_the_token(browser: Any, runs: Runs) -> None:
    token = "t0k-" + "x" * 20
    with serving("--runs-dir", runs.runs_dir, "--host", "0.0.0.0", "--token", token,
                 cwd=runs.root) as ui:
        assert ui.url.startswith("http://0.0.0.0:")
        url = ui.url.replace("0.0.0.0", "127.0.0.1")
        context = browser.new_context()
        try:
            page = context.new_page()
            assert page.goto(f"{url}/runs").status == 401
            assert page.goto(f"{url}/runs?token=wrong").status == 401
            assert page.goto(f"{url}/static/run.js").status == 401
            response = page.goto(f"{url}/runs?token={token}&status=failed")
            assert response.status == 200
            assert page.url == f"{url}/runs?status=failed"  # the token left the address bar
            expect(page.locator("#runs tbody tr")).to_have_count(1)
            assert page.goto(f"{url}/runs/{runs.ok}").status == 200  # the cookie carries it
            page.wait_for_function("() => document.getElementById('run-graph').naturalWidth > 0")
            cookie = next(c for c in context.cookies() if c["name"] == "mgt_ui_token")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        finally:
            context.close()
        other = browser.new_context()
        try:
            assert other.new_page().goto(f"{url}/runs/{runs.ok}").status == 401
        finally:
            other.close()


def test_the_token_may_come_from_the_environment(runs: Runs) -> None:
    with serving("--runs-dir", runs.runs_dir, "--host", "0.0.0.0", cwd=runs.root,
                 env={"MGT_UI_TOKEN": "from-env"}) as ui:
        assert "from-env" not in ui.printed  # not echoed: it was not typed on this command line
        url = ui.url.replace("0.0.0.0", "127.0.0.1")
        assert _status(f"{url}/runs") == 401
        status, headers = _no_redirect(f"{url}/runs?token=from-env")
        assert status == 303 and headers["location"] == "/runs"
        assert headers["set-cookie"].startswith("mgt_ui_token=from-env;")
        status, headers = _no_redirect(f"{url}//evil.example/x?token=from-env")
        assert status == 303 and headers["location"] == "/evil.example/x"  # stays here
        assert _status(f"{url}/runs", headers={"Cookie": "mgt_ui_token=from-env"}) == 200


def test_another_host_without_a_token_is_refused_in_one_line(runs: Runs) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "ui", "--runs-dir", str(runs.runs_dir),
         "--host", "0.0.0.0", "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in __import__("os").environ.items() if k != "MGT_UI_TOKEN"},
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "without an access token" in proc.stderr
    assert proc.stdout == ""


def test_on_loopback_a_foreign_host_name_and_writes_are_refused(server: Server,
                                                                 runs: Runs) -> None:
    assert _status(f"{server.url}/runs") == 200
    assert _status(f"{server.url}/runs", headers={"Host": "attacker.example:80"}) == 403
    assert _status(f"{server.url}/runs", method="POST") == 405
    assert _status(f"{server.url}/runs/{runs.ok}", method="DELETE") == 405
    assert _status(f"{server.url}/runs/{q('../etc')}") == 404


def test_another_loopback_address_needs_no_token(runs: Runs) -> None:
    with serving("--runs-dir", runs.runs_dir, "--host", "127.0.0.2", cwd=runs.root) as ui:
        assert ui.url.startswith("http://127.0.0.2:")
        assert _status(f"{ui.url}/runs") == 200


FAN = """\
machine fan "three items, each waiting for its go file"

state each:
    for n in [1, 2, 3]
    run command "while [ ! -f go$n ]; do sleep 0.05; done; echo $n"
    with n = n
    on done -> ok

final ok: succeed
"""


def test_a_fan_outs_items_update_the_page_without_redrawing_the_machine(
        page: Any, tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "fan.mgt").write_text(FAN)
    run = spawn("exec", tmp_path / "fan.mgt", "--runs-dir", "runs", cwd=tmp_path)
    try:
        runs_dir = tmp_path / "runs"
        wait_for("the items to start", lambda: any(
            (p / "states" / "each").is_dir() for p in runs_dir.iterdir()), run)
        run_id = next(p.name for p in runs_dir.iterdir() if not p.name.startswith("."))
        with serving("--runs-dir", runs_dir, cwd=tmp_path) as ui:
            page.goto(f"{ui.url}/runs/{run_id}")
            expect(page.locator("#run-current")).to_have_text("each")
            page.wait_for_function("() => document.getElementById('run-graph').naturalWidth > 0")
            drawn = page.get_attribute("#run-graph", "src")
            for n in (1, 2):
                (tmp_path / f"go{n}").touch()
                expect(page.locator(f'#states tr.item[data-item="{n - 1}"] .outcome')
                       ).to_have_text("done")
            # the items moved on; the path and the current state did not: same drawing
            assert page.get_attribute("#run-graph", "src") == drawn
            (tmp_path / "go3").touch()
            expect(page.locator("#run-status")).to_have_text("succeeded")
            assert page.get_attribute("#run-graph", "src") != drawn  # the run moved on
        assert run.wait(timeout=60) == 0
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()


def test_ctrl_c_stops_the_server_cleanly_even_with_a_live_page_open(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "slow.mgt").write_text(SLOW)
    run = spawn("exec", tmp_path / "slow.mgt", "--runs-dir", "runs", cwd=tmp_path)
    try:
        runs_dir = tmp_path / "runs"
        def started() -> list[Path]:  # a run directory (not one being made) with an event
            return [p for p in runs_dir.iterdir() if not p.name.startswith(".")
                    and (p / "events.jsonl").is_file() and (p / "events.jsonl").stat().st_size]

        wait_for("the run to start", lambda: bool(started()), run)
        run_id = started()[0].name
        ui = Server("--runs-dir", runs_dir, cwd=tmp_path)
        assert _status(f"{ui.url}/runs") == 200
        with urllib.request.urlopen(f"{ui.url}/runs/{run_id}/live", timeout=30) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.readline() == b"event: update\n"
            code, err = ui.stop()
            rest = stream.read()  # the server closed the stream: read to its end
        assert code in (0, 130), err
        assert "Traceback" not in err and "ERROR" not in err, err
        assert b"event: end" not in rest  # the run did not end: the server did
        (tmp_path / "go1").touch()
        (tmp_path / "go2").touch()
        assert run.wait(timeout=60) == 0
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()


class _Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _no_redirect(url: str) -> tuple[int, dict[str, str]]:
    opener = urllib.request.build_opener(_Keep)
    try:
        with opener.open(url, timeout=30) as response:
            return int(response.status), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as err:
        return int(err.code), {k.lower(): v for k, v in err.headers.items()}


def _status(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
