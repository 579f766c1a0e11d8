"""The vLLM server's life cycle for server-mode GRPO: started on the reserved GPU(s) for the user
(`grpo_plugin.vllm_autostart: true`), or checked before the model loads when started by hand;
restarted when it dies; stopped after training. See docs/vllm.md.

`health` and `engine_check` check the server, `server` owns the process (under `group_leader`),
`restart` starts it again, `autostart` wires them to the plugin hooks, `relaunch` puts the
trainer on the right GPUs, `cpu`/`cpu_sync`/`wire` serve vLLM's CPU build; the GPU split is
config/gpus.py. The watchdogs that use them during training are watch/.
"""
