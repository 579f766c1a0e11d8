"""vLLM server for server-mode GRPO: started on the reserved GPU(s) for the user
(`grpo_plugin.vllm_autostart: true`), or checked before the model loads when
started by hand. See docs/vllm.md.

`health` checks the server, `server` owns the process (under `group_leader`),
`autostart` wires them to the plugin hooks; the GPU split is config/gpus.py.
"""
