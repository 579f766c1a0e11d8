"""Benchmark of the LLM judge (`kind: judge`) against the issue's speed targets, on vLLM's CPU
build serving the embedded hd32 tiny model (OpenAI-compatible server on 127.0.0.1):

* concurrency: 64 completions through the judge (RemoteReward, cache off) vs the server's own
  time for the same 64 requests, sent straight to it at once (one plain httpx client,
  asyncio.gather: no bound, no retry, no cache). Target: ratio <= 1.2. Runs come in pairs
  whose order flips (reference first, then judge first, ...) so load on a shared machine hits
  both alike; the medians and the per-pair ratios are reported.
* cache: the same 64 completions again, every answer from the on-disk cache. Target: < 50 ms.

Usage (in .venv-vllm):
    PYTHONPATH=.:tests python bench/bench_remote_judge.py [--repeats 5] [--concurrency 64]
    [--base-url http://127.0.0.1:PORT/v1]   # a server already up, else one is started
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx


REPO_ROOT = Path(__file__).resolve().parents[1]
N = 64


def requests_for(reward) -> list:
    from axolotl_grpo_plugin.remote.kinds import prompt_text  # noqa: F401  (the same rendering)

    kind = reward.__wrapped__.kind
    batch = samples()
    return [kind.request({"prompt": p, "completion": c, "answer": a})
            for p, c, a in zip(batch["prompts"], batch["completions"], batch["answer"], strict=True)]


def samples(salt: str = "") -> dict:
    return {"prompts": [f"What is {i} + {i}?{salt}" for i in range(N)],
            "completions": [f"<reasoning>{i}+{i}</reasoning><answer>{2 * i}</answer>" for i in range(N)],
            "answer": [str(2 * i) for i in range(N)]}


def reference_s(requests) -> float:
    """The server's own time for these requests: all sent at once, nothing in between."""
    async def go():
        async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=N)) as client:
            start = time.perf_counter()
            responses = await asyncio.gather(*(client.post(r.url, json=r.body) for r in requests))
            elapsed = time.perf_counter() - start
        assert all(r.status_code == 200 for r in responses), [r.status_code for r in responses]
        return elapsed
    return asyncio.run(go())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64, help="the judge's `concurrency` key")
    parser.add_argument("--base-url", default=None)
    args = parser.parse_args(argv)

    from test_remote_judge_vllm import MODEL_NAME, TEMPLATE, start_judge_server, stop, wait_healthy

    from axolotl_grpo_plugin.config.args import RemoteRewardSettings
    from axolotl_grpo_plugin.remote import declared

    proc = None
    work = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    if args.base_url is None:
        from conftest import free_port

        from axolotl_grpo_plugin.embedded import build

        port = free_port()
        model = build(out=REPO_ROOT / ".cache" / "embedded", variant="hd32").model_dir
        proc = start_judge_server(model, port, work / "vllm.log")
        wait_healthy(proc, f"http://127.0.0.1:{port}", work / "vllm.log")
        args.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        def spec(name, cache):
            return RemoteRewardSettings(name=name, kind="judge", base_url=args.base_url, model=MODEL_NAME,
                                        template=TEMPLATE, concurrency=args.concurrency, cache=cache,
                                        timeout_s=600)  # a loaded machine must not turn into retries
        declared.declare([spec("bench_live", False), spec("bench_cached", str(work / "cache.sqlite"))])
        live, cached = declared.load("bench_live"), declared.load("bench_cached")
        requests = requests_for(live)
        reference_s(requests[:4])  # warm both paths once
        live(**{k: v[:4] for k, v in samples().items()})
        refs, ours = [], []

        def judged_s() -> float:
            start = time.perf_counter()
            metrics = {}
            live(**samples(), log_metric=metrics.__setitem__)
            if metrics["remote/bench_live/failures"] or metrics["remote/bench_live/calls"] != N:
                raise SystemExit(f"the judge's batch was not {N} clean calls, so its time is not comparable: "
                                 f"{ {k.rsplit('/', 1)[-1]: v for k, v in metrics.items()} }")
            return time.perf_counter() - start

        for i in range(args.repeats):  # the order flips each pair: neither side always goes first
            if i % 2:
                ours.append(judged_s())
                refs.append(reference_s(requests))
            else:
                refs.append(reference_s(requests))
                ours.append(judged_s())
        cached(**samples())  # fills the cache
        hits = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            cached(**samples())
            hits.append(time.perf_counter() - start)
        ratios = [o / r for o, r in zip(ours, refs, strict=True)]
        print(f"64 judge calls, concurrency {args.concurrency}, {args.repeats} alternating pairs")
        print(f"  server alone (64 at once): median {statistics.median(refs):.2f} s  {[round(x, 2) for x in refs]}")
        print(f"  through the judge reward:  median {statistics.median(ours):.2f} s  {[round(x, 2) for x in ours]}")
        print(f"  ratio judge/server per pair: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, "
              f"max {max(ratios):.3f}; of the medians {statistics.median(ours) / statistics.median(refs):.3f} "
              "(target <= 1.2)")
        print(f"  fully cached batch: median {1000 * statistics.median(hits):.1f} ms, max {1000 * max(hits):.1f} ms "
              "(target < 50 ms)")
    finally:
        if proc is not None:
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
