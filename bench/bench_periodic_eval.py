"""Cost of one periodic evaluation (`grpo_plugin.eval_every`) on CPU, beside its reference.

Default: transformers on the in-memory model (configs/smoke.yaml, embedded tiny model), beside
the generation of one training step (1 prompt x num_generations sampled completions), timed in
the same process with the same generator:

    python bench/bench_periodic_eval.py [--rounds 3] [--max-new-tokens 32]

`--engines` (vLLM's CPU build, in .venv-vllm): the same evaluation through each backend
eval_every can pick on a vLLM run of configs/cpu-vllm-server.yaml (hd32 model), side by side:
transformers on the trainer's model; the colocated engine, built by TRL's own
`VLLMGeneration` as GRPOTrainer builds it (max_num_seqs = per-device batch x steps per
generation = 4 in that config); the server, started as the plugin's autostart starts it and
reached through TRL's client. Each engine's weight push (the plugin's CPU push, what
periodic.py calls before the evaluation) is timed too:

    python bench/bench_periodic_eval.py --engines [--rounds 3] [--max-new-tokens 16]

What periodic.py does each time is timed: the evaluator with the problems built once (so the
reading and templating of the slice is paid once, not per call).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TEST_FILE = "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl"


def table(times: dict[str, list[float]], ref_of) -> None:
    print(f"{'case':64s} {'median s':>9s} {'x ref':>7s}")
    for name, values in times.items():
        median = statistics.median(values)
        ref = statistics.median(times[ref_of(name)])
        print(f"{name:64s} {median:9.3f} {median / ref:7.2f}")


def interleaved(cases: dict, rounds: int) -> dict[str, list[float]]:
    """Every case once per round, so load changes on the shared machine hit them alike."""
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def transformers_only(args) -> int:
    import torch

    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.embedded import build
    from axolotl_grpo_plugin.evaluate import core
    from axolotl_grpo_plugin.sampling import generation, models, prompts

    torch.set_num_threads(1)
    model_dir = build(out=ROOT / ".cache" / "embedded").model_dir
    cfg = prompts.load_config(ROOT / "configs" / "smoke.yaml")
    cfg["base_model"] = str(model_dir)
    cfg["datasets"][0]["path"] = str(ROOT / cfg["datasets"][0]["path"])
    tok = models.load_tokenizer(read_run(cfg), str(model_dir))
    model = models.load_model(str(model_dir), "cpu")
    model.train()  # as the trainer leaves it
    started = time.perf_counter()
    problems = prompts.build_problems(cfg, tok, run=read_run(cfg), dataset=str(ROOT / TEST_FILE), limit=64)
    build_s = time.perf_counter() - started

    gen = generation.TransformersGenerator(model, tok)
    step_settings = generation.SamplingSettings(n=4, temperature=1.0, max_new_tokens=args.max_new_tokens)

    def train_step_generation():
        gen.generate([problems[0].input_ids], step_settings)

    def periodic(limit, samples):
        def run():
            with torch.random.fork_rng(devices=[]):
                core.evaluate(cfg, model, tokenizer=tok, backend="transformers", problems=problems[:limit],
                              samples=samples, max_new_tokens=args.max_new_tokens, progress=False)
        return run

    reference = "reference: one training step's generation (1 prompt x 4)"
    cases = {reference: train_step_generation,
             "eval_every limit 16, samples 0 (16 completions)": periodic(16, 0),
             "eval_every limit 16, samples 4 (80 completions)": periodic(16, 4),
             "eval_every limit 64, samples 0 (64 completions)": periodic(64, 0)}
    times = interleaved(cases, args.rounds)
    print(f"slice built once (64 problems): {build_s:.2f} s")
    table(times, lambda name: reference)
    assert model.training, "the evaluation must hand the model back in train mode"
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def engines(args) -> int:
    import torch
    from accelerate import Accelerator
    from trl.generation.vllm_generation import VLLMGeneration

    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.embedded import build
    from axolotl_grpo_plugin.evaluate import core
    from axolotl_grpo_plugin.sampling import generation, models, prompts
    from axolotl_grpo_plugin.vllm import autostart, cpu, cpu_sync
    from axolotl_grpo_plugin.vllm.server import ServerSpec, VLLMServer

    if not cpu.is_cpu_vllm():
        print("--engines needs vLLM's CPU build (.venv-vllm)", file=sys.stderr)
        return 2
    model_dir = build(out=ROOT / ".cache" / "embedded", variant="hd32").model_dir
    cfg = prompts.load_config(ROOT / "configs" / "cpu-vllm-server.yaml")
    cfg["base_model"] = str(model_dir)
    cfg["datasets"][0]["path"] = str(ROOT / cfg["datasets"][0]["path"])
    cpu.configure(cfg)  # worker extension, float32, KV cache size: as `axolotl train` does
    tok = models.load_tokenizer(read_run(cfg), str(model_dir))
    model = models.load_model(str(model_dir), "cpu")
    model.train()
    problems = prompts.build_problems(cfg, tok, run=read_run(cfg), dataset=str(ROOT / TEST_FILE), limit=64)

    tmp = Path(tempfile.mkdtemp(prefix="bench-periodic-eval-"))
    port = _free_port()
    snapshot = autostart.write_server_config(cfg, read_run(cfg), tmp / autostart.CONFIG_NAME, "127.0.0.1", port)
    server = VLLMServer(ServerSpec(
        command=autostart.vllm_serve_command(snapshot), log_path=tmp / "vllm-server.log",
        host="127.0.0.1", port=port,
        env=cpu.server_env(os.environ) | autostart.server_env(os.environ, cpu.CPU_GPU_LAYOUT, pin=False)))
    server.start()
    try:
        print(f"vLLM server up after {server.wait_healthy(900):.0f} s (log: {tmp / 'vllm-server.log'})")
        cpu_sync.patch_trl_start(str(cfg["vllm"]["dtype"]))
        accelerator = Accelerator(cpu=True)
        common = dict(model=model, accelerator=accelerator, processing_class=tok,
                      max_completion_length=args.max_new_tokens)
        served = VLLMGeneration(mode="server", server_host="127.0.0.1", server_port=port,
                                server_timeout=600, **common)
        colocated = VLLMGeneration(mode="colocate", tensor_parallel_size=1, max_num_seqs=4,
                                   enable_sleep_mode=False, **common)
        for engine in (served, colocated):
            cpu_sync.install(engine)
        generators = {"transformers": generation.TransformersGenerator(model, tok, batch_size=32),
                      "vllm-colocate": generation.LLMGenerator(colocated.llm, tok),
                      "vllm-server": generation.ServerGenerator(served.vllm_client, tok)}

        def periodic(gen, limit, samples):
            def run():
                with torch.random.fork_rng(devices=[]):
                    core.evaluate(cfg, model, tokenizer=tok, generator=gen, problems=problems[:limit],
                                  samples=samples, max_new_tokens=args.max_new_tokens, progress=False)
            return run

        shapes = [(16, 0), (16, 4), (64, 0)]
        cases = {}
        for limit, samples in shapes:
            for name, gen in generators.items():
                label = (f"limit {limit}, samples {samples} ({limit * (1 + samples)} completions): "
                         f"{name}")
                cases[label] = periodic(gen, limit, samples)
        cases["weight push before the evaluation: vllm-colocate"] = colocated.sync_weights
        cases["weight push before the evaluation: vllm-server"] = served.sync_weights
        for fn in cases.values():  # warm-up: first-call compilation and caches are not per-eval cost
            fn()
        times = interleaved(cases, args.rounds)
    finally:
        server.stop()
    print(f"max_new_tokens {args.max_new_tokens}, rounds {args.rounds}; x ref = against transformers "
          "on the same slice (pushes: against the limit 16, samples 0 transformers evaluation)")
    table(times, lambda name: (name.rsplit(": ", 1)[0] + ": transformers") if name.startswith("limit")
          else "limit 16, samples 0 (16 completions): transformers")
    assert model.training, "the evaluation must hand the model back in train mode"
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="default 32 (transformers only) or 16 (--engines: the config's)")
    parser.add_argument("--engines", action="store_true",
                        help="transformers vs the colocated engine vs the server (vLLM's CPU build)")
    args = parser.parse_args()
    if args.engines:
        args.max_new_tokens = args.max_new_tokens or 16
        return engines(args)
    args.max_new_tokens = args.max_new_tokens or 32
    return transformers_only(args)


if __name__ == "__main__":
    sys.exit(main())
