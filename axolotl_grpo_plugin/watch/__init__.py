"""Watchdogs over a training run: each wraps a trainer method or reads its logged metrics, and
acts when what it watches goes wrong, so a run fails with what to do instead of hanging or
learning from stale samples.

`liveness` (a vLLM `/generate/` that hangs), `recovery` (a server that dies: restart it, through
vllm/restart.py), `sync_guard` (the weight-sync guard: vLLM sampling from stale weights),
`saves` (a checkpoint save on a full disk). They are attached in `post_trainer_create`; the vLLM
server's own life cycle (start, health, engine check, restart, stop) is vllm/.
"""
