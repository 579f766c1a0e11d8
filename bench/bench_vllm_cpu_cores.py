"""How many cores vLLM's CPU build samples on, and what that costs.

vLLM-CPU binds its model worker's OpenMP threads to the machine's cores minus one, which it
reserves for the engine's scheduler process (vllm/utils/ompmultiprocessing.py: "reserve 1 core
for scheduler proc"). On a 2-core machine the worker then samples on one core, while the
scheduler polls the other (`taskset -cp` on `VLLM::Worker` shows one CPU). This samples the
same fixed number of tokens (ignore_eos) with the engine set up each way, each in its own
process, one after the other, and prints a JSON line per setup and the ratios to the first:

- `server`: the engine in its own process, the worker in another (how `axolotl vllm-serve`,
  the autostarted server, runs it), vLLM's default binding;
- `server-all-cores`: the same with `VLLM_CPU_NUM_OF_RESERVED_CPU=0` (no core reserved);
- `in-process`: the engine and the worker in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`,
  how `probe`/`evaluate`/`bench_real_model` score).

    . .venv-vllm/bin/activate
    python bench/bench_vllm_cpu_cores.py --model models/qwen2.5-coder-0.5b --data PATH/gsm8k/test.jsonl

`cpu_s` is the user + system time of the setup's whole process tree; `cpu_s / generate_s` is
how many cores the sampling kept busy (the scheduler's polling included).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


SETUPS = {
    "server": {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"},
    "server-all-cores": {"VLLM_ENABLE_V1_MULTIPROCESSING": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"},
    "in-process": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
}


def sample(args) -> dict:
    """One setup, in this (child) process: load, warm up, then time the sampling."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams

    llm = LLM(model=args.model, dtype=args.dtype, enforce_eager=True, seed=0, max_model_len=1024)
    tokenizer = llm.get_tokenizer()
    with open(args.data) as f:
        questions = [json.loads(line)["question"] for _, line in zip(range(args.prompts), f)]
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                           add_generation_prompt=True) for q in questions]
    params = SamplingParams(n=args.samples, temperature=1.0, max_tokens=args.max_tokens,
                            ignore_eos=True, seed=0)
    llm.generate(texts[:1], SamplingParams(max_tokens=8), use_tqdm=False)  # warm-up
    before = os.times()
    started = time.perf_counter()
    outputs = llm.generate(texts, params, use_tqdm=False)
    wall = time.perf_counter() - started
    after = os.times()
    tokens = sum(len(o.token_ids) for request in outputs for o in request.outputs)
    own_cpu = (after.user - before.user) + (after.system - before.system)
    return {"generate_s": round(wall, 1), "tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
            "own_cpu_s": round(own_cpu, 1)}


def run_setup(name: str, args) -> dict:
    """`name` in a fresh process; its tree's CPU time from the children's rusage."""
    env = {**os.environ, **SETUPS[name]}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--one", name, "--model", args.model,
                           "--data", args.data, "--prompts", str(args.prompts), "--samples",
                           str(args.samples), "--max-tokens", str(args.max_tokens), "--dtype", args.dtype],
                          env=env, capture_output=True, text=True)
    total = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"{name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = {"setup": name, **json.loads(lines[-1]), "process_s": round(total, 1)}
    tree_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["tree_cpu_s"] = round(tree_cpu, 1)  # load + sampling, every process of the setup
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder (axolotl-grpo fetch-model)")
    parser.add_argument("--data", required=True, help="GSM8K jsonl with a `question` field")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2, help="completions per prompt")
    parser.add_argument("--max-tokens", type=int, default=256, help="tokens per completion (exactly)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one setup
    args = parser.parse_args()
    if args.one:
        print(json.dumps(sample(args)), flush=True)
        return 0
    results = [run_setup(name, args) for name in args.setups]
    first = results[0]
    for result in results:
        result["speed_vs_" + first["setup"]] = round(result["tokens_per_s"] / first["tokens_per_s"], 2)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
