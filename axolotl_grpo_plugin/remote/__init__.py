"""Rewards served over the network, declared in yaml (`grpo_plugin.remote_rewards`): an LLM
judge on an OpenAI-compatible endpoint, or an HTTP verifier (docs/remote-rewards.md).

    kinds.py     what each kind sends and how its answer becomes a number
    calls.py     the process's event loop: concurrent calls, timeouts, retries
    spend.py     one reward's spend against its budgets: this process's, or the run's
    ledger.py    the run's spend in OUTPUT_DIR, shared by every process of a run and its resumes
    cache.py     the on-disk cache of answers (sqlite)
    reward.py    RemoteReward: one batch in TRL's reward convention, None where a call failed
    declared.py  yaml name -> the import path Axolotl loads, and the contained reward behind it
    checks.py    the keys each kind needs (for `check` and `axolotl train`)
    reach.py     `check` reaching each endpoint once
"""
