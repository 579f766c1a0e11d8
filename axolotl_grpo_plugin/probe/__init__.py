"""Pre-flight probe: will this GRPO run learn? (`python -m axolotl_grpo_plugin.probe CONFIG`)."""

from .core import ProbeError, ProbeResult, probe


__all__ = ["ProbeError", "ProbeResult", "probe"]
