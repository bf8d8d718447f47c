"""The stand-in's ``EngineArgs``: the fields of vLLM 0.33's ``vllm.engine.arg_utils.EngineArgs`` that
an arena config is likely to name (vLLM has many more). As in vLLM, an unknown keyword is a
``TypeError``; ``swap_space`` and ``max_seq_len_to_capture`` are gone, as they are from 0.33."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineArgs:
    model: str = "facebook/opt-125m"
    tokenizer: str | None = None
    tokenizer_mode: str = "auto"
    skip_tokenizer_init: bool = False
    trust_remote_code: bool = False
    download_dir: str | None = None
    load_format: str = "auto"
    dtype: str = "auto"
    kv_cache_dtype: str = "auto"
    seed: int = 0
    max_model_len: int | None = None
    distributed_executor_backend: str | None = None
    pipeline_parallel_size: int = 1
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    enable_expert_parallel: bool = False
    block_size: int | None = None
    enable_prefix_caching: bool | None = None
    disable_sliding_window: bool = False
    gpu_memory_utilization: float = 0.9
    kv_cache_memory_bytes: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    max_logprobs: int = 20
    disable_log_stats: bool = False
    revision: str | None = None
    code_revision: str | None = None
    tokenizer_revision: str | None = None
    quantization: str | None = None
    enforce_eager: bool = False
    disable_custom_all_reduce: bool = False
    enable_lora: bool = False
    max_loras: int = 1
    max_lora_rank: int = 16
    cpu_offload_gb: float = 0
    enable_chunked_prefill: bool | None = None
    hf_token: str | bool | None = None
    hf_overrides: dict | None = None
    generation_config: str = "auto"
    override_generation_config: dict | None = None
    compilation_config: dict | int | None = None
    limit_mm_per_prompt: dict | None = None
    async_scheduling: bool | None = None
    attention_backend: str | None = None
