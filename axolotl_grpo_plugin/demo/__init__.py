"""The embedded demo: GRPO visibly teaching a tiny pre-trained base the R1 format on CPU."""
