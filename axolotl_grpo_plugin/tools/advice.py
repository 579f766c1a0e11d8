"""What to tell a user whose model does not use its tools well: one text for the probe (before a
run) and the run doctor (during one)."""

from __future__ import annotations


NEVER_CALLED = ("the model never calls its tools: no completion has a tool call the chat template's "
                "parser reads, so GRPO has no tool use to reinforce")
NEVER_CALLED_FIX = ("teach the calls first with a tool cold start, supervised rows whose assistant turns "
                    "call the tools (`type: axolotl_grpo_plugin.transforms.gsm8k_tools` for GSM8K, "
                    "configs/smollm2-gsm8k-tools-sft.yaml; docs/tools.md), with the same `chat_template` "
                    "as this run, then start from that model")
MOSTLY_FAIL = "most tool calls fail: the model sees an error result instead of an answer"
MOSTLY_FAIL_FIX = ("read the failing calls (`tool_calls` in the run's rollout log, or in the samples file "
                   "`axolotl-grpo evaluate` writes): arguments the tool refuses call for a clearer docstring "
                   "and `Args:` text (the model sees them), timeouts for a larger "
                   "`grpo_plugin.tool_timeout_s` or a faster tool")
MOSTLY_FAIL_SHARE = 0.5  # of the calls: "most"
