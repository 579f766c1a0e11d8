"""The embedded demo: GRPO visibly teaching a tiny pre-trained base the R1 format on CPU."""

from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"
