"""Memory arithmetic for one GRPO trainer process and the vLLM GPU.

Pure functions of a `Workload`, so every number can be checked by hand. What
each term assumes (and which Axolotl/TRL code it follows) is in docs/scaling.md.
Bytes everywhere; the CLI prints GiB.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from ..config import defaults
from .dims import ModelDims
from .gpus import GIB, GPU


Method = Literal["full", "lora", "qlora"]
Sharding = Literal["none", "zero1", "zero2", "zero3", "fsdp"]

# NF4 with double quantization (Axolotl's QLoRA default): 4 bits per weight, an
# 8-bit absmax per 64 weights, and an fp32 scale per 256 of those absmaxes.
NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)
LORA_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CUDA_OVERHEAD_BYTES = 1 * GIB  # CUDA context, cuBLAS workspaces, allocator slack
VLLM_RUNTIME_BYTES = 2 * GIB  # vLLM's activation profile and CUDA graphs, beyond weights and KV
# Completion logits at a step's peak. With bf16/fp16 the Trainer runs accelerate's mixed precision,
# which returns the model's outputs in fp32: the logits, what TRL's log-softmax saves for backward
# and their gradients come to 4 fp32 copies (measured on an H200 with TRL 1.9: docs/scaling.md,
# "Validated on a GPU"). An fp32 run's 3 copies are arithmetic, not measured on a GPU.
MIXED_PRECISION_LOGIT_COPIES, FP32_LOGIT_COPIES = 4, 3
FITS, TIGHT = 0.90, 1.00


@dataclass(frozen=True)
class Workload:
    """Everything about a launch that moves memory, read from a config plus the launch."""

    dims: ModelDims
    method: Method = "full"
    sharding: Sharding = "none"
    processes: int = 1
    micro_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    num_generations: int = defaults.NUM_GENERATIONS
    prompt_tokens: int = 256
    completion_tokens: int = defaults.MAX_COMPLETION_LENGTH
    generation_batch_size: int | None = None  # None: mbs x gas x processes
    gradient_checkpointing: bool = True
    flash_attention: bool = True
    half_precision: bool = True
    beta: float = defaults.BETA
    optimizer: str = defaults.OPTIMIZER
    lora_r: int = 16
    lora_targets: tuple[str, ...] = LORA_LINEAR
    lora_dropout: float = defaults.LORA_DROPOUT
    use_vllm: bool = True
    vllm_mode: Literal["server", "colocate"] = "server"
    vllm_gpu_memory_utilization: float = defaults.VLLM_GPU_MEMORY_UTILIZATION
    vllm_sleep_mode: bool = False
    vllm_max_model_len: int | None = None
    vllm_tensor_parallel: int = 1

    @property
    def sequence_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def global_generation_batch(self) -> int:
        return self.generation_batch_size or (
            self.micro_batch_size * self.gradient_accumulation_steps * self.processes)

    @property
    def weight_bytes(self) -> int:
        """Bytes per 16/32-bit weight: bf16/fp16 when half precision, else fp32."""
        return 2 if self.half_precision else 4


@dataclass(frozen=True)
class Item:
    name: str
    bytes: float
    note: str = ""


@dataclass
class TrainerEstimate:
    """One training process: what stays resident, what one step adds, and the peak."""

    resident: list[Item]
    step: list[Item]
    generation: list[Item]
    colocated_vllm: list[Item]
    load_peak: float
    peak: float
    notes: list[str] = field(default_factory=list)


def total_bytes(items: list[Item]) -> float:
    return sum(i.bytes for i in items)


@dataclass
class VllmEstimate:
    reserved: float
    weights: float
    runtime: float
    kv_capacity: float
    kv_needed: float
    kv_min: float
    kv_min_tokens: int
    concurrent_sequences: int
    sequences: int


def lora_params(dims: ModelDims, r: int, targets: tuple[str, ...]) -> int:
    """r x (in + out) per targeted linear, in every layer."""
    shapes = dims.linear_shapes()
    unknown = [t for t in targets if t not in shapes]
    if unknown:
        raise ValueError(f"LoRA targets {unknown} are not linear layers the planner knows "
                         f"({', '.join(shapes)})")
    return dims.layers * sum(r * (shapes[t][0] + shapes[t][1]) for t in targets)


def base_weight_bytes(w: Workload) -> float:
    """The model's own weights as loaded (4-bit linears under QLoRA)."""
    d = w.dims
    if w.method == "qlora":
        quantized = d.layers * d.layer_linear_params()
        rest = d.total_params() - quantized
        return quantized * NF4_BYTES_PER_PARAM + rest * 2
    return d.total_params() * w.weight_bytes


def _optimizer_state_bytes_per_param(w: Workload, param_bytes: int) -> int:
    """AdamW keeps two moments in the parameter's dtype; 8-bit optimizers keep one byte each."""
    return 2 if "8bit" in w.optimizer else 2 * param_bytes


def _shard(w: Workload, stage_min: int) -> int:
    """Divisor for a state that ZeRO stage >= stage_min (or FSDP) shards across processes."""
    stage = {"none": 0, "zero1": 1, "zero2": 2, "zero3": 3, "fsdp": 3}[w.sharding]
    return w.processes if stage >= stage_min else 1


def resident_items(w: Workload) -> list[Item]:
    """Weights, gradients, optimizer state and any kept reference model."""
    d, items = w.dims, []
    params = d.total_params()
    if w.method == "full":
        if w.sharding in ("zero1", "zero2", "zero3"):
            # DeepSpeed with bf16: 16-bit params and grads, fp32 master copy + Adam moments.
            items.append(Item("weights (bf16)", params * 2 / _shard(w, 3), "sharded" if _shard(w, 3) > 1 else ""))
            items.append(Item("gradients (bf16)", params * 2 / _shard(w, 2)))
            items.append(Item("optimizer: fp32 master + Adam moments", params * 12 / _shard(w, 1),
                              f"12 B/param / {_shard(w, 1)}"))
        elif w.sharding == "fsdp":
            # accelerate's FSDP2 upcasts trainable params to fp32 under mixed precision.
            items.append(Item("weights (fp32 shards)", params * 4 / w.processes))
            items.append(Item("gradients (fp32 shards)", params * 4 / w.processes))
            items.append(Item("optimizer: Adam moments (fp32)",
                              params * _optimizer_state_bytes_per_param(w, 4) / w.processes))
        else:
            wb = w.weight_bytes
            items.append(Item(f"weights ({'bf16' if wb == 2 else 'fp32'})", params * wb))
            items.append(Item("gradients", params * wb))
            items.append(Item("optimizer: Adam moments", params * _optimizer_state_bytes_per_param(w, wb),
                              "same dtype as the weights (Axolotl loads bf16 weights; no fp32 master)"))
            if w.processes > 1:
                items.append(Item("DDP gradient buckets", params * wb, "all-reduce buffers"))
        if w.beta != 0.0:
            items.append(Item("reference model (TRL, beta != 0)", params * w.weight_bytes / _shard(w, 3)))
    else:
        base = base_weight_bytes(w) / _shard(w, 3)
        label = "base weights (NF4 linears, bf16 rest)" if w.method == "qlora" else "base weights (frozen)"
        items.append(Item(label, base))
        adapter = lora_params(d, w.lora_r, w.lora_targets)
        # PEFT keeps adapter weights in fp32: weight + grad + two Adam moments = 16 B/param.
        items.append(Item(f"LoRA adapters r={w.lora_r} ({adapter / 1e6:.1f}M params)",
                          adapter * (8 + _optimizer_state_bytes_per_param(w, 4)) / _shard(w, 1),
                          "fp32 weights, grads and Adam moments"))
    if w.sharding in ("zero3", "fsdp") and w.processes > 1:
        layer = d.layer_linear_params() + d.layer_other_params()
        gathered = max(d.embedding_params(), 2 * layer) * 2
        items.append(Item("gathered parameters in flight", gathered, "about two layers (or the embedding)"))
    return items


def activation_bytes_per_token_layer(w: Workload) -> int:
    """What autograd saves per token in one decoder layer (flash attention, SwiGLU MLP):
    2 norm inputs + 2 norm outputs (4H), q and attention output (2q), k and v (2kv),
    gate, up, silu(gate) and their product (4I)."""
    d = w.dims
    elements = 4 * d.hidden + 2 * d.q_dim + 2 * d.kv_dim + 4 * d.intermediate
    per = elements * w.weight_bytes
    if w.method != "full" and w.lora_dropout > 0:
        shapes = d.linear_shapes()
        per += sum(shapes[t][0] for t in w.lora_targets) * (w.weight_bytes + 1)  # dropout output + mask
    return per


def step_items(w: Workload) -> list[Item]:
    """Activations and logits of one micro-batch forward/backward (padded to the longest sequence)."""
    d = w.dims
    tokens = w.micro_batch_size * w.sequence_tokens
    per_layer = activation_bytes_per_token_layer(w)
    items = []
    if w.gradient_checkpointing:
        items.append(Item("activations: checkpoints", d.layers * tokens * d.hidden * w.weight_bytes,
                          f"layers x {tokens} tokens x hidden"))
        items.append(Item("activations: one layer recomputed", tokens * per_layer))
        attention_layers = 1
    else:
        items.append(Item("activations (no checkpointing)", d.layers * tokens * per_layer,
                          f"layers x {tokens} tokens x {per_layer} B"))
        attention_layers = d.layers
    if not w.flash_attention:
        scores = w.micro_batch_size * d.heads * w.sequence_tokens**2 * w.weight_bytes * 2
        items.append(Item("attention scores (eager)", scores * attention_layers, "use flash_attention"))
    copies = MIXED_PRECISION_LOGIT_COPIES if w.half_precision else FP32_LOGIT_COPIES
    items.append(Item("logits (completion positions only, fp32)",
                      copies * w.micro_batch_size * w.completion_tokens * d.vocab * 4,
                      f"{copies} x {w.micro_batch_size} x {w.completion_tokens} x vocab {d.vocab} x 4 B"))
    return items


def generation_items(w: Workload) -> list[Item]:
    """Without vLLM, transformers' generate holds a KV cache for this process's prompts."""
    if w.use_vllm:
        return []
    sequences = w.global_generation_batch // w.processes
    kv = sequences * w.sequence_tokens * w.dims.kv_bytes_per_token(w.weight_bytes)
    return [Item("KV cache (transformers generate)", kv, f"{sequences} sequences x {w.sequence_tokens} tokens")]


def colocated_vllm_items(w: Workload, gpu: GPU) -> list[Item]:
    if not (w.use_vllm and w.vllm_mode == "colocate"):
        return []
    reserved = w.vllm_gpu_memory_utilization * gpu.memory_bytes
    note = "released while training (sleep mode)" if w.vllm_sleep_mode else "held all the time"
    return [Item(f"colocated vLLM ({w.vllm_gpu_memory_utilization:g} x GPU)", reserved, note)]


def estimate_trainer(w: Workload, gpu: GPU) -> TrainerEstimate:
    resident, step = resident_items(w), step_items(w)
    generation, colocated = generation_items(w), colocated_vllm_items(w, gpu)
    base = total_bytes(resident)
    train_phase = base + total_bytes(step)
    generate_phase = base + total_bytes(generation)
    notes = []
    if colocated and w.vllm_sleep_mode:
        # TRL empties the CUDA cache and wakes vLLM only to generate: the phases alternate.
        peak = max(train_phase, generate_phase + total_bytes(colocated))
    else:
        peak = max(train_phase, generate_phase) + total_bytes(colocated)
    peak += CUDA_OVERHEAD_BYTES
    load_peak = base_weight_bytes(w) / _shard(w, 3) + CUDA_OVERHEAD_BYTES
    if w.method == "full":
        # Axolotl 0.19's setup_reference_model loads the model a second time for GRPO
        # full fine-tunes, even with beta 0; it is dropped before training starts.
        load_peak += base_weight_bytes(w) / _shard(w, 3)
        notes.append("Axolotl 0.19 loads a second copy of the model at start-up on full fine-tunes "
                     "(even with beta 0) and frees it before training; it counts at load only.")
    if w.beta != 0.0 and w.method == "full":
        notes.append("beta != 0 on a full fine-tune: TRL keeps a reference model for the whole run.")
    return TrainerEstimate(resident, step, generation, colocated, load_peak, max(peak, load_peak), notes)


def estimate_vllm(w: Workload, gpu: GPU) -> VllmEstimate:
    """The vLLM server GPU: weights, runtime, and the KV cache the generation batch wants."""
    d = w.dims
    tp = max(w.vllm_tensor_parallel, 1)
    reserved = w.vllm_gpu_memory_utilization * gpu.memory_bytes
    weights = d.total_params() * 2 / tp
    kv_token = d.kv_bytes_per_token(2) / tp
    capacity = max(reserved - weights - VLLM_RUNTIME_BYTES, 0.0)
    sequences = w.global_generation_batch
    needed = sequences * w.sequence_tokens * kv_token
    max_len = w.vllm_max_model_len or (d.max_position if w.vllm_mode == "colocate" else w.sequence_tokens)
    return VllmEstimate(
        reserved=reserved, weights=weights, runtime=VLLM_RUNTIME_BYTES, kv_capacity=capacity,
        kv_needed=needed, kv_min=max_len * kv_token, kv_min_tokens=max_len,
        concurrent_sequences=int(capacity // (w.sequence_tokens * kv_token)) if kv_token else 0,
        sequences=sequences,
    )


def verdict(needed: float, available: float) -> str:
    ratio = needed / available
    if ratio <= FITS:
        return "fits"
    if ratio <= TIGHT:
        return "tight"
    return "does not fit"


def levers(w: Workload, gpu: GPU, sleep_mode_works: bool = False) -> list[tuple[str, float]]:
    """Changes that lower the trainer's peak, with the new peak, largest saving first.
    Sleep mode is offered only when the caller says the installed TRL syncs weights with it
    (TRL <= 1.9 does not: watch/sync_guard.py)."""
    options: list[tuple[str, Workload]] = []
    if not w.gradient_checkpointing:
        options.append(("set `gradient_checkpointing: true`", replace(w, gradient_checkpointing=True)))
    if w.micro_batch_size > 1 and w.generation_batch_size is None:
        half = w.micro_batch_size // 2
        options.append((f"micro_batch_size {w.micro_batch_size} -> {half} with gradient_accumulation_steps "
                        f"{w.gradient_accumulation_steps} -> {w.gradient_accumulation_steps * 2} (same batch)",
                        replace(w, micro_batch_size=half,
                                gradient_accumulation_steps=w.gradient_accumulation_steps * 2)))
    if w.method == "full":
        options.append(("train LoRA (`adapter: lora`, r=16, all linear layers)", replace(w, method="lora")))
        if w.processes > 1 and w.sharding in ("none", "zero1", "zero2"):
            options.append((f"DeepSpeed ZeRO-3 across the {w.processes} training processes",
                            replace(w, sharding="zero3")))
    if w.method == "lora":
        options.append(("QLoRA (`adapter: qlora`, `load_in_4bit: true`)", replace(w, method="qlora")))
    if w.use_vllm and w.vllm_mode == "colocate":
        if sleep_mode_works and not w.vllm_sleep_mode:
            options.append(("`trl.vllm_enable_sleep_mode: true`", replace(w, vllm_sleep_mode=True)))
        if w.vllm_gpu_memory_utilization > 0.2:
            lower = round(w.vllm_gpu_memory_utilization - 0.1, 2)
            options.append((f"`vllm.gpu_memory_utilization: {lower:g}`",
                            replace(w, vllm_gpu_memory_utilization=lower)))
    if w.completion_tokens > 128:
        shorter = w.completion_tokens // 2
        options.append((f"`trl.max_completion_length: {shorter}` (changes what the model may write)",
                        replace(w, completion_tokens=shorter)))
    results = [(label, estimate_trainer(changed, gpu).peak) for label, changed in options]
    return sorted(results, key=lambda item: item[1])
