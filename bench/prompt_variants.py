"""How much of a base model's GSM8K accuracy is the prompt's? Greedy completions of the same
problems under several prompt layouts, scored three ways (R1 correct, strict format, any layout:
see bench/any_layout_accuracy.py), on vLLM's offline engine (CPU build here).

Why: Qwen2.5-Coder-0.5B-Instruct answers 12.9 % of the first 512 GSM8K test problems right in any
layout under the cookbook's prompt (the R1 format request in the user turn), where verl reports
49.6 % for Qwen2.5-0.5B-Instruct under its own prompt. Before training on that prompt, this says
which part of the gap the prompt is.

    python bench/prompt_variants.py MODEL_DIR GSM8K_TEST.jsonl --limit 64 --out OUT_DIR \
        [--variants cookbook_user,cookbook_system,verl,plain] [--max-tokens 544]

Writes OUT_DIR/VARIANT.jsonl (one row per problem) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from axolotl_grpo_plugin.transforms.gsm8k import build_prompt
from axolotl_grpo_rewards.gsm8k import (
    correctness_reward_func,
    final_number,
    gold_number,
    is_strict_format,
)


VERL_SUFFIX = 'Let\'s think step by step and output the final answer after "####".'


def messages(variant: str, question: str) -> list[dict]:
    """One problem's chat under a named prompt layout."""
    if variant in ("cookbook_user", "cookbook_system"):  # the training transform's prompt, either role
        return build_prompt(question, variant.removeprefix("cookbook_"))
    if variant == "verl":  # verl's examples/data_preprocess/gsm8k.py
        return [{"role": "user", "content": question + " " + VERL_SUFFIX}]
    if variant == "plain":
        return [{"role": "user", "content": question}]
    raise SystemExit(f"unknown variant {variant!r}")


def verl_number(text: str):
    """verl's answer: the number after the last '####', else the any-layout final number."""
    if "####" in text:
        return final_number(text.rsplit("####", 1)[1])
    return final_number(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("dataset")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", default="cookbook_user,cookbook_system,verl,plain")
    parser.add_argument("--max-tokens", type=int, default=544)
    args = parser.parse_args()

    from vllm import LLM, SamplingParams

    from axolotl_grpo_plugin.sampling.backend import engine_on_cpu

    llm_kwargs = {"dtype": "float32", "max_model_len": args.max_tokens + 320}
    engine_on_cpu(llm_kwargs)  # eager, 1 GiB KV cache, the engine in this process, as evaluate builds it

    rows = [json.loads(line) for line in Path(args.dataset).read_text().splitlines()[: args.limit]]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    llm = LLM(model=args.model, seed=0, **llm_kwargs)
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    print(f"{'variant':<16} {'n':>4} {'R1 correct':>10} {'strict':>7} {'any layout':>10} {'cut':>5} {'mean tok':>8} {'wall s':>7}")
    for variant in args.variants.split(","):
        start = time.perf_counter()
        outputs = llm.chat([messages(variant, r["question"]) for r in rows], params, use_tqdm=False)
        wall = time.perf_counter() - start
        n = r1 = strict = anyl = cut = tokens = 0
        with (out / f"{variant}.jsonl").open("w", encoding="utf-8") as fh:
            for row, o in zip(rows, outputs):
                text = o.outputs[0].text
                ntok = len(o.outputs[0].token_ids)
                gold = gold_number(row["answer"])
                is_cut = ntok >= args.max_tokens
                value = None if is_cut else (verl_number(text) if variant == "verl" else final_number(text))
                record = {
                    "question": row["question"], "gold": str(gold), "completion": text, "tokens": ntok,
                    "cut": is_cut, "strict": is_strict_format(text),
                    "r1_correct": correctness_reward_func([text], answer=[row["answer"]])[0] > 0,
                    "any_layout": value is not None and value == gold,
                }
                fh.write(json.dumps(record) + "\n")
                n += 1
                r1 += record["r1_correct"]
                strict += record["strict"]
                anyl += record["any_layout"]
                cut += is_cut
                tokens += ntok
        print(f"{variant:<16} {n:>4} {100 * r1 / n:>9.1f}% {100 * strict / n:>6.1f}% {100 * anyl / n:>9.1f}% "
              f"{100 * cut / n:>4.1f}% {tokens / n:>8.0f} {wall:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
