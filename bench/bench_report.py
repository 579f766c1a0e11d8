"""How fast the HTML report opens for a large rollout log, in headless Chromium.

Writes a seeded synthetic rollout log (GSM8K-like completions of realistic length,
some with reflection phrases), builds the report with the CLI's code path, and
opens it several times; "open" is from navigation start until the list is
rendered (`window.__reportReady`, performance.now()). A 1,000-rollout report
opened in the same browser is the reference.

    python bench/bench_report.py --n 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from axolotl_grpo_plugin.report import write_report  # noqa: E402
from axolotl_grpo_plugin.report.browser import browser_unavailable, open_report, start  # noqa: E402
from axolotl_grpo_plugin.rollouts.log import RolloutLogWriter, read_rollouts  # noqa: E402
from axolotl_grpo_plugin.rollouts.metrics import ReflectionMatcher  # noqa: E402


NAMES = ["correctness_reward_func", "int_reward_func", "strict_format_reward_func",
         "soft_format_reward_func", "xmlcount_reward_func"]
WORDS = ("the total is so we add multiply each then apples cost dollars hours minus "
         "times left per week she he they buys sells").split()
GROUP = 16


def completion(rng: random.Random, step: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(80, 220)))
    if rng.random() < min(0.3, step / 2000):
        cut = len(words) // 2
        words = words[:cut] + " Wait, that's wrong, let me check again. " + words[cut:]
    return f"<reasoning>\n{words}\n</reasoning>\n<answer>\n{rng.randint(1, 999)}\n</answer>"


def write_log(output_dir: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    matcher = ReflectionMatcher()
    writer = RolloutLogWriter(output_dir, max_mb=0)
    batch = GROUP * 4
    for first in range(0, n, batch):
        step = first // batch + 1
        records = []
        for i in range(first, min(n, first + batch)):
            text = completion(rng, step)
            rewards = {name: rng.choice([0.0, 0.5, 2.0]) for name in NAMES}
            records.append({
                "step": step, "mode": "train", "group": (i - first) // GROUP,
                "prompt": f"user\nQuestion {i // GROUP}: how many apples are left?\nassistant\n",
                "completion": text, "rewards": rewards, "reward": sum(rewards.values()),
                "advantage": rng.gauss(0, 1), "length": len(text) // 4,
                "reflection": matcher.first(text), "answer": str(rng.randint(1, 999)),
            })
        writer.write_step(records)
    writer.close()


def measure(driver, path: Path, repeats: int) -> tuple[list[float], list[float]]:
    """(ms until the list is shown, ms until the texts are in too) per open."""
    listed, ready = [], []
    for _ in range(repeats):
        ready.append(open_report(driver, path, timeout=120))
        listed.append(driver.execute_script("return window.__reportListed"))
    return listed, ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if reason := browser_unavailable():
        print(f"cannot benchmark: {reason}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big, small = tmp / "big", tmp / "small"
        write_log(big, args.n)
        write_log(small, 1000)
        t0 = time.perf_counter()
        write_report(read_rollouts(big), big / "report.html", title="bench")
        build_s = time.perf_counter() - t0
        write_report(read_rollouts(small), small / "report.html", title="bench-small")
        size_mb = (big / "report.html").stat().st_size / 1e6
        log_mb = (big / "rollouts.jsonl").stat().st_size / 1e6
        driver = start()
        try:
            measure(driver, small / "report.html", 1)  # warm the browser
            ref_listed, ref = measure(driver, small / "report.html", args.repeats)
            listed, opened = measure(driver, big / "report.html", args.repeats)
            # first text search: includes the 150 ms input debounce and lowercasing every text once
            search_ms = driver.execute_script(
                "const c=document.getElementById('count'), before=c.textContent, t0=performance.now();"
                "const e=document.getElementById('f-text'); e.value='let me check';"
                "e.dispatchEvent(new Event('input'));"
                "return new Promise(r=>{const poll=()=>c.textContent!==before?"
                "r(performance.now()-t0):setTimeout(poll,5); poll();});")
        finally:
            driver.quit()
    print(f"rollouts: {args.n:,}  log: {log_mb:.1f} MB  report: {size_mb:.1f} MB  build: {build_s:.1f} s")
    print(f"open, 1,000 rollouts (reference): median {statistics.median(ref):.0f} ms  {[round(x) for x in ref]}")
    print(f"open, {args.n:,} rollouts: median {statistics.median(opened):.0f} ms  {[round(x) for x in opened]}"
          f"  (list shown before the texts: median {statistics.median(listed):.0f} ms)")
    print(f"ratio: {statistics.median(opened) / statistics.median(ref):.1f}x the reference")
    print(f"first text search (incl. the 150 ms debounce): {search_ms:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
