"""The HTML report: data it shows, the CLI, and the page in headless Chromium."""

from __future__ import annotations

import json
import re

import pytest

from axolotl_grpo_plugin.commands.report import main
from axolotl_grpo_plugin.observe import ReflectionMatcher
from axolotl_grpo_plugin.report import collect, render_html, write_report
from axolotl_grpo_plugin.report.browser import browser_unavailable, open_report, start
from axolotl_grpo_plugin.report.data import columns, curves
from axolotl_grpo_plugin.rollouts.log import RolloutLogWriter


NAMES = ["correctness_reward_func", "strict_format_reward_func"]
EVIL = "</script><script>window.pwned = 1</script> <!-- __DATA__"


def rollout(step, i, text=None):
    text = text if text is not None else f"step {step} rollout {i}: the answer is {i}"
    rewards = {NAMES[0]: 2.0 if i % 4 == 0 else 0.0, NAMES[1]: 0.5 * (i % 2)}
    return {"step": step, "mode": "train", "group": i // 4, "prompt": f"Question {i // 4}?",
            "completion": text, "rewards": rewards, "reward": sum(rewards.values()),
            "advantage": 0.1 * i - 0.35, "length": 10 + i, "answer": str(i),
            "reflection": ReflectionMatcher().first(text)}


def hand_written_log(output_dir):
    """3 steps × 8 rollouts; reflections appear at step 2; one hostile completion."""
    writer = RolloutLogWriter(output_dir)
    for step in (1, 2, 3):
        rows = [rollout(step, i) for i in range(8)]
        if step == 2:
            rows[5] = rollout(2, 5, "12 + 5 = 18. Wait, that's wrong, let me check: 17.")
        if step == 3:
            rows[1] = rollout(3, 1, "Let me go back. zebra-unique-word")
            rows[2] = rollout(3, 2, EVIL)
        writer.write_step(rows)
    writer.close()
    return output_dir


def test_curves_are_per_step_means_over_every_rollout():
    records = [rollout(s, i) for s in (1, 2) for i in range(8)]
    records.append({**rollout(2, 8), "rewards": {NAMES[0]: None, NAMES[1]: 1.0}})
    series = curves(collect(records))
    xs, ys = series[NAMES[0]]
    assert xs == [1, 2] and ys == [pytest.approx(4.0 / 8)] * 2  # a null reward is skipped
    assert series[NAMES[1]][1][1] == pytest.approx((0.5 * 4 + 1.0) / 9)
    assert series["completion length"][1] == [pytest.approx(13.5), pytest.approx(14.0)]
    assert series["reflection rate"][1] == [0.0, 0.0]


def test_large_logs_are_sampled_but_keep_the_first_reflections_in_log_order():
    records = [rollout(s, i) for s in range(1, 51) for i in range(8)]
    records[333] = rollout(42, 5, "Hold on, I made a mistake.")
    data = collect(records, max_rollouts=40, seed=1)
    assert data.sampled and data.total == 400
    steps = [r["step"] for r in data.rows]
    assert 40 <= len(data.rows) <= 41 and steps == sorted(steps)
    assert data.rows[data.first_reflections[0]]["completion"] == "Hold on, I made a mistake."
    assert not collect(records, max_rollouts=400).sampled


def test_reflection_offsets_are_utf16_for_the_page():
    meta, completions, _ = columns(collect([rollout(1, 0, "🙂 wait")]))
    assert (meta["cols"]["rs"][0], meta["cols"]["re"][0]) == (3, 7)  # the emoji is 2 code units
    assert meta["cols"]["clen"] == [7]


def test_custom_phrases_recount_reflections():
    records = [rollout(1, 0, "hmm, recompute"), rollout(1, 1, "wait")]
    data = collect(records, phrases=["recompute"])
    assert [r["reflection"] for r in data.rows] == [(5, 14), None]


def test_the_page_needs_no_network_and_model_text_cannot_break_out(tmp_path):
    page = render_html(collect([rollout(1, 0, EVIL), {**rollout(1, 1), "answer": EVIL}]), "run <1>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "fetch(\"http" not in page
    assert page.count("</script>") == page.count("<script") == 4  # data, 1 text chunk, prompts, code
    assert "<script>window.pwned" not in page
    assert "<title>run &lt;1&gt;</title>" in page
    meta = json.loads(re.search(r'id="report-data" type="application/json">(.*?)</script>', page, re.S)[1])
    assert meta["cols"]["answer"][1] == EVIL


def test_server_restarts_are_listed_not_counted_as_rollouts():
    restart = {"type": "vllm_restart", "step": 2, "restart": 1, "cause": "the server process exited (code -9) <b>",
               "took_s": 12.5, "time": "2026-11-23T19:00:00+00:00", "log": "vllm-server.restart-1.log"}
    data = collect([rollout(1, 0), restart, rollout(2, 0)])
    assert data.total == 2 and data.restarts == [restart]
    page = render_html(data, "run")
    section = re.search(r'<section id="restarts">(.*?)</section>', page, re.S)[1]
    assert "vLLM server restarts (1)" in section and "step 2</b>" in section and "12.5 s" in section
    assert "exited (code -9) &lt;b&gt;" in section and "vllm-server.restart-1.log" in section
    assert 'id="restarts"' not in render_html(collect([rollout(1, 0)]), "run")


def test_every_record_kind_is_read_by_the_report_and_none_is_a_rollout():
    """Issue 48: the records beside the rollouts are told apart by one field and one list of kinds;
    a periodic evaluation written before it (`"kind": "eval"`) reads the same."""
    from axolotl_grpo_plugin.observe.step_time import METRICS
    from axolotl_grpo_plugin.report.data import SAMPLING_FIGURES
    from axolotl_grpo_plugin.rollouts.log import KIND_FIELD, RECORD_KINDS, is_rollout, record_kind

    seconds = dict.fromkeys(METRICS, 1.0)
    marked = [{KIND_FIELD: kind, "step": 1, "metrics": {"eval/accuracy": 0.5}, "seconds": seconds,
               "signature": "truncation", "message": "m", **dict.fromkeys(SAMPLING_FIGURES, 1)}
              for kind in RECORD_KINDS]
    legacy = {"step": 2, "mode": "eval", "kind": "eval", "metrics": {"eval/accuracy": 0.75}}
    assert not any(is_rollout(r) for r in [*marked, legacy]) and record_kind(legacy) == "eval"
    data = collect([rollout(1, 0), *marked, legacy])
    assert data.total == 1 and data.skipped == 0
    assert len(data.restarts) == 1 and len(data.findings) == 1 and sorted(data.evals) == [1, 2]
    assert list(data.step_times) == [1] and list(data.sampling) == [1]


def test_cli_writes_the_report_and_explains_bad_input(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "no rollout log" in capsys.readouterr().err
    hand_written_log(tmp_path)
    assert main([str(tmp_path), "-o", str(tmp_path / "r.html"), "--max-rollouts", "10"]) == 0
    # 10 sampled, plus the 2 first reflection moments when the sample missed them
    assert re.search(r"24 rollouts, 1[0-2] shown \(sampled\)", capsys.readouterr().out)
    assert not list(tmp_path.glob("*.tmp"))


def test_an_unwritable_html_path_names_the_flag_that_sets_it(tmp_path, capsys):
    hand_written_log(tmp_path)
    target = tmp_path / "rollouts.jsonl" / "r.html"  # a file where its folder would be
    for flag in ("--html", "-o"):  # -o is the old spelling: the error names the flag it became
        assert main([str(tmp_path), flag, str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err == (f"error: --html = {str(target)!r}: {tmp_path / 'rollouts.jsonl'} is a file, not a folder. "
                       "Fix: choose a writable path with --html FILE")


def test_an_html_path_in_a_missing_folder_is_written_and_its_folder_made(tmp_path, capsys):
    """`--html sub/dir/x.html` once failed with 'No such file or directory'; score made its folder."""
    hand_written_log(tmp_path / "run")
    target = tmp_path / "sub" / "dir" / "x.html"
    assert main([str(tmp_path / "run"), "--html", str(target)]) == 0
    assert target.read_text().startswith("<!") and f"Wrote {target}: 24 rollouts" in capsys.readouterr().out



@pytest.mark.parametrize("how", ["same", "relative", "symlink"])
def test_html_onto_the_runs_own_rollout_log_is_refused_and_the_log_kept(tmp_path, capsys, monkeypatch, how):
    """`report RUN --html RUN/rollouts.jsonl` once replaced the run's log with the HTML, exit 0."""
    run = hand_written_log(tmp_path / "run")
    log = run / "rollouts.jsonl"
    before = log.read_bytes()
    target = {"same": str(log), "relative": "run/../run/rollouts.jsonl", "symlink": str(tmp_path / "link.html")}[how]
    if how == "symlink":
        (tmp_path / "link.html").symlink_to(log)
    monkeypatch.chdir(tmp_path)
    assert main([str(run), "--html", target]) == 2
    err = capsys.readouterr().err
    assert f"--html = {target!r} is the run's rollout log" in err and "Fix: write to another file" in err
    assert log.read_bytes() == before


@pytest.mark.parametrize("content, why", [
    (b"", "no rollout records in it"),
    (b"not json\n[1, 2]\n{torn", "3 lines unreadable, first at line 1"),
    (b'{"kind": "x"}\n\n[1, 2]\n', "1 line unreadable, first at line 3"),
])
def test_a_log_with_no_readable_rollout_fails_and_leaves_the_old_report(tmp_path, capsys, content, why):
    """Such a log once wrote a "0 rollouts" report over a good report.html, exit 0."""
    (tmp_path / "rollouts.jsonl").write_bytes(content)
    report = tmp_path / "report.html"
    report.write_text("the good report")
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"no readable rollout in {str(tmp_path / 'rollouts.jsonl')!r} ({why})" in err, err
    assert report.read_text() == "the good report" and not list(tmp_path.glob(".*.tmp"))


# --- in a real browser -------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    reason = browser_unavailable()
    if reason:
        pytest.skip(f"headless Chromium unavailable: {reason}")
    driver = start()
    yield driver
    driver.quit()


def visible_rows(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#spacer .row')).map(r => "
        "Array.from(r.children).map(c => c.textContent))")


def wait_for(driver, script, timeout=10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def test_report_in_headless_chromium_filters_searches_and_links_reflections(browser, tmp_path):
    from selenium.webdriver.common.by import By

    write_report(__import__("axolotl_grpo_plugin.observe", fromlist=["read_rollouts"])
                 .read_rollouts(hand_written_log(tmp_path)), tmp_path / "report.html", title="t")
    open_report(browser, tmp_path / "report.html")
    assert browser.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert len(browser.find_elements(By.CSS_SELECTOR, ".plots img")) == len(NAMES) + 3
    assert browser.find_element(By.ID, "count").text == "24 of 24 rollouts"
    before = visible_rows(browser)
    assert {row[1] for row in before} == {"1", "2", "3"}
    assert browser.execute_script("return window.pwned === undefined")

    step_min = browser.find_element(By.ID, "f-step-min")
    step_min.send_keys("3")
    wait_for(browser, "return document.getElementById('count').textContent.startsWith('8 of')")
    after = visible_rows(browser)
    assert after != before and {row[1] for row in after} == {"3"} and len(after) == 8

    step_min.clear()
    browser.find_element(By.ID, "f-text").send_keys("ZEBRA-unique")
    wait_for(browser, "return document.getElementById('count').textContent.startsWith('1 of')")
    [row] = visible_rows(browser)
    assert row[0] == "↺" and "zebra-unique-word" in row[-1]

    browser.find_element(By.ID, "f-text").clear()
    browser.find_element(By.CSS_SELECTOR, "a.first-reflection").click()
    wait_for(browser, "return document.querySelector('#detail mark')")
    mark = browser.find_element(By.CSS_SELECTOR, "#detail mark")
    assert mark.text == "Wait"
    assert "step 2" in browser.find_element(By.CSS_SELECTOR, "#detail h2").text
    assert browser.find_element(By.CSS_SELECTOR, "#spacer .row.selected")


def test_a_sampled_report_says_so_in_the_page(browser, tmp_path):
    records = [rollout(s, i) for s in range(1, 21) for i in range(8)]
    write_report(records, tmp_path / "report.html", title="t", max_rollouts=30)
    open_report(browser, tmp_path / "report.html")
    notice = browser.find_element("id", "sampled")
    assert notice.is_displayed() and "160 rollouts" in notice.text and "sample of 30" in notice.text


def test_texts_of_later_chunks_load_on_scroll_and_on_search(browser, tmp_path, monkeypatch):
    import axolotl_grpo_plugin.report as report

    monkeypatch.setattr(report, "CHUNK_ROWS", 16)
    records = [rollout(s, i) for s in range(1, 21) for i in range(8)]
    records[150] = rollout(19, 6, "needle-in-chunk-ten")
    write_report(records, tmp_path / "report.html", title="t")
    open_report(browser, tmp_path / "report.html")
    assert browser.execute_script("return document.querySelectorAll('script.report-chunk').length") == 10
    browser.execute_script("const l = document.getElementById('list'); l.scrollTop = l.scrollHeight;"
                           "l.dispatchEvent(new Event('scroll'));")
    wait_for(browser, "return Array.from(document.querySelectorAll('#spacer .row'))"
                      ".some(r => r.lastChild.textContent.startsWith('step 20 rollout 7'))")
    browser.find_element("id", "f-text").send_keys("NEEDLE")
    wait_for(browser, "return document.getElementById('count').textContent.startsWith('1 of')")
    [row] = visible_rows(browser)
    assert row[1] == "19" and row[-1] == "needle-in-chunk-ten"


def tool_rollout(step, i, result="42"):
    calls = [{"name": "calculator", "arguments": {"expression": "6*7"}, "result": result, "seconds": 0.0012},
             {"name": "calculator", "arguments": {"expression": EVIL}}]  # TRL dropped this one's turn
    return {**rollout(step, i, "<tool_call>...</tool_call> 42 <answer>42</answer>"), "tool_calls": calls}


def test_tool_calls_travel_with_their_rollout_and_cannot_break_out():
    data = collect([rollout(1, 0), tool_rollout(1, 1, result=EVIL), {**rollout(1, 2), "tool_calls": "odd"}])
    meta, _, _ = columns(data)
    first, second = meta["cols"]["tools"][1]
    assert meta["cols"]["tools"][0] is None and meta["cols"]["tools"][2] is None
    assert first == ["calculator", '{"expression": "6*7"}', EVIL, 0.0012]
    assert second[2] is None and EVIL in second[1]
    page = render_html(data, "t")
    assert "<script>window.pwned" not in page and page.count("</script>") == page.count("<script")
    assert "tools" not in columns(collect([rollout(1, 0)]))[0]["cols"]  # runs without tools carry nothing


def test_the_page_shows_a_rollouts_tool_calls_as_text(browser, tmp_path):
    from selenium.webdriver.common.by import By

    write_report([rollout(1, 0), tool_rollout(1, 1, result=EVIL)], tmp_path / "report.html", title="t")
    open_report(browser, tmp_path / "report.html")
    rows = browser.find_elements(By.CSS_SELECTOR, "#spacer .row")
    next(r for r in rows if "answer>42" in r.text).click()
    wait_for(browser, "return document.querySelector('#detail table.tool-calls')")
    cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('#detail table.tool-calls tr')).map(r => "
        "Array.from(r.children).map(c => c.textContent))")
    assert cells[0] == ["tool", "arguments", "result", "seconds"]
    assert cells[1] == ["calculator", '{"expression": "6*7"}', EVIL, "0.0012"]
    assert cells[2][2] == "(no result: TRL dropped the turn)"
    assert "Tool calls (2)" in browser.find_element(By.ID, "detail").text
    assert browser.execute_script("return window.pwned === undefined")


def test_write_report_of_no_rollout_keeps_the_page_there(tmp_path):
    """The library refuses an empty report as the CLI does: the good page stays, total says why."""
    page = tmp_path / "report.html"
    page.write_text("<html>a good report</html>")
    data = write_report([], page, title="t")
    assert data.total == 0 and page.read_text() == "<html>a good report</html>"
