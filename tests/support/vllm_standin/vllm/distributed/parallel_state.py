"""The stand-in's model-parallel teardown: each call is recorded in ``vllm.SHUTDOWNS``."""

from __future__ import annotations

import vllm


def destroy_model_parallel() -> None:
    vllm.SHUTDOWNS.append("destroy_model_parallel")


def destroy_distributed_environment() -> None:
    vllm.SHUTDOWNS.append("destroy_distributed_environment")
