"""The one sampling path that `probe` and `evaluate` share: a model sampled on a config's own
prompts, the way training samples them, and scored with the config's rewards.

    prompts.py     the config's dataset rows -> Problems, rendered as TRL renders them (EvalError)
    models.py      the model checked, its tokenizer, the generation backend (vLLM or transformers)
    backend.py     vLLM's CPU build as the tools see it (vllm/cpu.py re-exports it)
    generation.py  the generators and the trainer's sampling settings (SamplingSettings.of(run))
    tool_loop.py   generation through the run's tools, as TRL's trainer runs them
    scoring.py     the config's rewards, called as TRL calls them
    checks.py      the sampling commands' flag checks, before anything loads
    sampler.py     SampleRequest -> Sampler: the steps above, in one order, once

It sits below the services: nothing here imports a command (audit, evaluate, probe, ...), vllm/
or the plugin (tests/test_architecture.py). Nothing is imported here: `is_cpu_vllm` is asked in
every process, so `sampling.backend` must stay light.
"""
