"""Sampling speed of vLLM's CPU build in float32 vs bfloat16 on one model (the probe's and
evaluate's in-process engine settings: eager, engine in this process, 1 GiB KV cache).

    . .venv-vllm/bin/activate
    python bench/bench_vllm_cpu_dtype.py --model models/smollm2-135m --data PATH/gsm8k/train.jsonl

Each dtype runs in its own process, one after the other (16 GSM8K questions x 8 samples,
<= 200 tokens, T=1.0); it prints one JSON line per dtype and the ratio. bfloat16 is fast only
where the CPU has bfloat16 units (AMX or AVX512-BF16; `lscpu | grep -o 'amx_bf16\\|avx512_bf16'`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def sample(model: str, data: str, dtype: str, prompts: int, n: int, max_tokens: int) -> dict:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import torch
    from vllm import LLM, SamplingParams

    started = time.perf_counter()
    llm = LLM(model=model, dtype=dtype, enforce_eager=True, seed=0, max_model_len=1024)
    loaded = time.perf_counter()
    tokenizer = llm.get_tokenizer()
    with open(data) as f:
        questions = [json.loads(line)["question"] for _, line in zip(range(prompts), f)]
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                           add_generation_prompt=True) for q in questions]
    cpu = time.process_time()
    wall = time.perf_counter()
    outputs = llm.generate(texts, SamplingParams(n=n, temperature=1.0, max_tokens=max_tokens),
                           use_tqdm=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tokens = sum(len(o.token_ids) for request in outputs for o in request.outputs)
    return {"dtype": dtype, "load_s": round(loaded - started, 1), "generate_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
            "torch_threads": torch.get_num_threads()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder (axolotl-grpo fetch-model)")
    parser.add_argument("--data", required=True, help="GSM8K jsonl with a `question` field")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one dtype
    args = parser.parse_args()
    if args.one:
        print(json.dumps(sample(args.model, args.data, args.one, args.prompts, args.samples,
                                args.max_tokens)))
        return 0
    results = []
    for dtype in args.dtypes:
        proc = subprocess.run([sys.executable, __file__, "--model", args.model, "--data", args.data,
                               "--prompts", str(args.prompts), "--samples", str(args.samples),
                               "--max-tokens", str(args.max_tokens), "--one", dtype],
                              capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("{")), None)
        if line is None:
            print(f"{dtype}: failed (exit {proc.returncode})\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(line))
        print(line, flush=True)
    if len(results) == 2:
        print(f"{results[0]['dtype']} / {results[1]['dtype']} generate time: "
              f"{results[0]['generate_s'] / results[1]['generate_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
