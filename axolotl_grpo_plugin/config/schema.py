"""The keys Axolotl's own schema knows, per section, read from Axolotl itself so they
follow the installed version."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def axolotl_fields() -> dict[str, frozenset[str]]:
    """`trl`, `vllm` and top-level (`top`) keys of Axolotl's config schema."""
    from axolotl.utils.schemas.config import AxolotlInputConfig
    from axolotl.utils.schemas.trl import TRLConfig
    from axolotl.utils.schemas.vllm import VllmConfig

    return {
        "trl": frozenset(TRLConfig.model_fields),
        "vllm": frozenset(VllmConfig.model_fields),
        "top": frozenset(AxolotlInputConfig.model_fields),
    }
