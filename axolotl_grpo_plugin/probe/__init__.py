"""Pre-flight probe: will this GRPO run learn? (`axolotl-grpo probe CONFIG`)."""

from .core import ProbeError, ProbeResult, probe


__all__ = ["ProbeError", "ProbeResult", "probe"]
