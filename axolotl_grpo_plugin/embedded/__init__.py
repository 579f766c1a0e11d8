"""Offline stand-ins for the Hub: a tiny Qwen2 model, its tokenizer and GSM8K-style data.

Everything here is generated locally in seconds, so tests, CI and
``configs/smoke.yaml`` never need network access. Heavy imports (torch,
transformers) happen only when a model or tokenizer is actually built.
"""

from .builder import DEFAULT_OUT, EMBEDDED_VERSION, MODEL_DIR_NAME, BuildResult, build, is_built
from .problems import R1_SYSTEM_PROMPT, final_answer, format_solution, generate_problems
from .sample_data import sample_splits, write_sample_data


__all__ = [
    "DEFAULT_OUT",
    "EMBEDDED_VERSION",
    "MODEL_DIR_NAME",
    "BuildResult",
    "R1_SYSTEM_PROMPT",
    "build",
    "final_answer",
    "format_solution",
    "generate_problems",
    "is_built",
    "sample_splits",
    "write_sample_data",
]
