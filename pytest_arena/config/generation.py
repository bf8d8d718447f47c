"""A candidate's ``generation_config``: checked before anything loads, for every backend, and held as
one typed ``GenerationSettings`` with the project's defaults applied once.

transformers' ``GenerationConfig`` takes almost any value and only its logits processors complain, at
``generate()`` time, after the model loaded (``typical_p: "high"``, ``epsilon_cutoff: 2``). Here each
setting the project accepts gets its type and range, and the settings are checked together and
against the checkpoint's context length, read from its config.json. The mappings onto what a backend
takes live here too (``chat_sampling`` for an API candidate's requests, ``sampling_kwargs`` for
``vllm.SamplingParams``): config validation runs them, so a setting a backend cannot honour is refused
before anything loads. Plain Python: no torch, no transformers, no backend module, so config
validation stays cheap, and the backends import this module, never the other way round.

``GenerationSettings`` is what every consumer takes (``ModelSpec.generation``): the transformers
backend (``for_transformers``), vLLM (``for_vllm``), an API candidate (``for_chat``) and the local judge
(whose settings the config builds with ``for_judge``); ``DEFAULTS`` is the one place a default is set.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import UnsupportedSetting, excerpt, kind_of

# What max_new_tokens is when the config does not say (all backends).
DEFAULT_MAX_NEW_TOKENS = 256
# The settings every backend receives when the config leaves them out: applied in one place
# (GenerationSettings), so no backend keeps a default of its own.
DEFAULTS = {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS}
# Seeds: what numpy's Generator, torch.manual_seed and vLLM all take (numpy refuses negatives).
SEED_RANGE = (0, 2**32 - 1)


@dataclass(frozen=True)
class Rule:
    """The type and range one setting must have; ``expected`` says both in words."""

    types: tuple[type, ...]
    expected: str
    valid: Callable[[Any], bool] = lambda value: True


_INT, _NUMBER, _BOOL = (int,), (int, float), (bool,)


def _positive_int(expected="a positive integer"):
    return Rule(_INT, expected, lambda v: v >= 1)


def _count(expected="an integer >= 0"):
    return Rule(_INT, expected, lambda v: v >= 0)


def _between(low, high, *, low_open=False, high_open=False):
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    return Rule(_NUMBER, f"a number in {left}{low}, {high}{right}",
                lambda v: (v > low if low_open else v >= low) and (v < high if high_open else v <= high))


# Every numeric (and boolean) sampling setting a backend of this project may receive. Ranges are those
# transformers' logits processors enforce (or silently ignore outside of, as epsilon_cutoff >= 1).
RULES: dict[str, Rule] = {
    "do_sample": Rule(_BOOL, "true or false"),
    "max_new_tokens": _positive_int(),
    "min_new_tokens": _count("a non-negative integer"),
    "max_length": _positive_int(),
    "min_length": _count("a non-negative integer"),
    "max_time": Rule(_NUMBER, "seconds > 0", lambda v: v > 0),
    "num_beams": _positive_int(),
    "num_beam_groups": _positive_int(),
    # One answer per question: more sequences would be read as answers to other questions.
    "num_return_sequences": Rule(_INT, "1 (the arena keeps one answer per question)", lambda v: v == 1),
    "temperature": Rule(_NUMBER, "a non-negative number", lambda v: v >= 0),
    "top_k": _count("a non-negative integer"),
    "top_p": _between(0, 1, low_open=True),
    "top_h": _between(0, 1, low_open=True),
    "min_p": _between(0, 1),
    "typical_p": _between(0, 1, low_open=True),
    "epsilon_cutoff": _between(0, 1, high_open=True),
    "eta_cutoff": _between(0, 1, high_open=True),
    "penalty_alpha": Rule(_NUMBER, "a number >= 0", lambda v: v >= 0),
    "diversity_penalty": Rule(_NUMBER, "a number >= 0", lambda v: v >= 0),
    "repetition_penalty": Rule(_NUMBER, "a positive number", lambda v: v > 0),
    "encoder_repetition_penalty": Rule(_NUMBER, "a positive number", lambda v: v > 0),
    "length_penalty": Rule(_NUMBER, "a number"),
    "guidance_scale": Rule(_NUMBER, "a number >= 0", lambda v: v >= 0),
    "no_repeat_ngram_size": _count(),
    "encoder_no_repeat_ngram_size": _count(),
    "prompt_lookup_num_tokens": _positive_int(),
    "num_assistant_tokens": _positive_int(),
    "max_matching_ngram_size": _positive_int(),
    "assistant_confidence_threshold": _between(0, 1),
    "pad_token_id": _count("a token id (an integer >= 0)"),
    "bos_token_id": _count("a token id (an integer >= 0)"),
    "use_cache": Rule(_BOOL, "true or false"),
    "renormalize_logits": Rule(_BOOL, "true or false"),
    "remove_invalid_values": Rule(_BOOL, "true or false"),
    "low_memory": Rule(_BOOL, "true or false"),
    # The arena reads generated token ids; a dict of outputs is not what it reads.
    "return_dict_in_generate": Rule(_BOOL, "false (the arena reads only the generated tokens)", lambda v: not v),
    # Chat-completions settings of API candidates (OpenAI's ranges).
    "presence_penalty": _between(-2, 2),
    "frequency_penalty": _between(-2, 2),
    "seed": Rule(_INT, f"an integer from {SEED_RANGE[0]} to {SEED_RANGE[1]}",
                 lambda v: SEED_RANGE[0] <= v <= SEED_RANGE[1]),
}


def finite(value) -> bool:
    """A number that is neither NaN nor infinite, nor an integer too large to be a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def problem_with(value, rule: Rule) -> str | None:
    """Why ``value`` breaks ``rule`` (one phrase), or None when it keeps it."""
    # bool is an int in Python; a `true` where a number belongs is still a mistake.
    if isinstance(value, bool) and bool not in rule.types:
        return f"expected {rule.expected}, got {value!r}"
    if not isinstance(value, rule.types):
        return f"expected {rule.expected}, got {kind_of(value)} {excerpt(value)}"
    if not isinstance(value, bool) and not finite(value):
        return f"expected {rule.expected} (a finite number), got {excerpt(value)}"
    if not rule.valid(value):
        return f"expected {rule.expected}, got {excerpt(value)}"
    return None


def check_generation_settings(settings: dict) -> None:
    """Types and ranges of a ``generation_config``, and how its settings fit together.

    Raises ``UnsupportedSetting`` (the key and the problem). Keys it does not know are left to each
    backend's own check (transformers' GenerationConfig fields, the vLLM and API mappers).
    """
    for key, value in settings.items():
        rule = RULES.get(key)
        if rule is not None and value is not None:
            problem = problem_with(value, rule)
            if problem:
                raise UnsupportedSetting(key, problem)
    _check_stop_strings(settings.get("stop_strings"))
    _check_eos(settings.get("eos_token_id"))
    if settings.get("do_sample") and settings.get("temperature") == 0:
        raise UnsupportedSetting("temperature", "expected a positive number when do_sample is true "
                                                "(or set do_sample: false), got 0")
    _check_bounds(settings, "min_new_tokens", "max_new_tokens", DEFAULTS["max_new_tokens"])
    _check_bounds(settings, "min_length", "max_length", None)


def _check_bounds(settings: dict, low_key: str, high_key: str, default_high: int | None) -> None:
    """``low_key`` no larger than ``high_key`` (or the default that stands for it)."""
    low, high = settings.get(low_key), settings.get(high_key)
    shown = f"{high_key} ({high})"
    if high is None and default_high is not None:
        high, shown = default_high, f"{high_key} ({default_high}, the default)"
    if low is not None and high is not None and low > high:
        raise UnsupportedSetting(low_key, f"expected at most {shown}, got {low}")


def _check_stop_strings(stop) -> None:
    if stop is None:
        return
    strings = [stop] if isinstance(stop, str) else stop
    if not isinstance(strings, list) or not strings or not all(isinstance(s, str) and s for s in strings):
        raise UnsupportedSetting("stop_strings", f"expected a non-empty string or a list of them, got {excerpt(stop)}")


def _check_eos(eos) -> None:
    if eos is None:
        return
    ids = eos if isinstance(eos, list) else [eos]
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise UnsupportedSetting("eos_token_id", f"expected a token id or a list of them, got {excerpt(eos)}")


# --------------------------------------------------------------------------------------------------
# The checkpoint's context length

# config.json keys that hold how many positions a model attends to, in the order architectures use them.
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length", "n_ctx")
# Multimodal checkpoints keep the language model's settings in a nested section.
NESTED_SECTIONS = ("text_config", "llm_config", "language_config")


def context_length(folder: str | Path) -> tuple[int, str] | None:
    """How many tokens the checkpoint in ``folder`` can hold, and the config.json key that says so;
    None when its config.json does not say (or cannot be read: checkpoint_problem reports that)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sections = [config] + [config[k] for k in NESTED_SECTIONS if isinstance(config, dict) and isinstance(config.get(k), dict)]
    for section in sections if isinstance(config, dict) else ():
        for key in CONTEXT_KEYS:
            value = section.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return _scaled(value, section), key
    return None


def _scaled(positions: int, section: dict) -> int:
    """Positions stretched by RoPE scaling (YaRN, dynamic NTK), which lets a model run past the
    length it was trained on; the larger reading wins, since only what is surely too long is refused."""
    scaling = section.get("rope_scaling") or section.get("rope_parameters")
    if not isinstance(scaling, dict):
        return positions
    factor = scaling.get("factor")
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not finite(factor) or factor <= 1:
        return positions
    original = scaling.get("original_max_position_embeddings")
    base = original if isinstance(original, int) and not isinstance(original, bool) and original > 0 else positions
    return max(positions, int(base * factor))


def check_context(settings: dict, folder: str | Path, limit: int | None = None) -> str | None:
    """Why ``max_new_tokens`` cannot fit in the checkpoint's context (``limit``: a shorter context
    the backend is told to use, such as vLLM's max_model_len), or None."""
    wanted = settings.get("max_new_tokens")
    if not isinstance(wanted, int) or isinstance(wanted, bool):
        return None
    found = context_length(folder)
    if found is None and limit is None:
        return None
    context, source = found if found else (limit, "max_model_len")
    if limit is not None and limit < context:
        context, source = limit, "vllm_args.max_model_len"
    else:
        source = f"{source} in {Path(folder) / 'config.json'}"
    if wanted >= context:
        return (f"expected fewer than the model's context of {context} tokens ({source}; the prompt needs "
                f"room too), got {wanted}")
    return None


def first_non_finite(mapping: dict, depth: int = 0) -> tuple[str, float] | None:
    """The key path and value of the first NaN or infinity in a mapping passed on as given (vllm_args,
    extra_body, settings without a rule), or None. Sent on, NaN becomes invalid JSON or a silent no-op."""
    items = mapping.items() if isinstance(mapping, dict) else enumerate(mapping)
    for key, value in items:
        here = f".{key}" if isinstance(mapping, dict) else f"[{key}]"
        if isinstance(value, float) and not finite(value):
            return here, value
        if isinstance(value, (dict, list)) and depth < 64:  # the config reader refuses deeper nesting already
            found = first_non_finite(value, depth + 1)
            if found:
                return here + found[0], found[1]
    return None


# --------------------------------------------------------------------------------------------------
# Candidates behind an OpenAI-compatible API (api_backend.py sends the requests)

# generation_config key -> the request parameter it becomes. OpenAI's own parameters first; then
# those vLLM and SGLang accept beside them (a hosted API may refuse these with a 400).
CHAT_PARAMETERS = {"top_p": "top_p", "presence_penalty": "presence_penalty",
                   "frequency_penalty": "frequency_penalty", "seed": "seed", "stop": "stop"}
SERVER_EXTENSIONS = {"top_k": "top_k", "min_p": "min_p", "repetition_penalty": "repetition_penalty",
                     "min_new_tokens": "min_tokens"}
# Read by chat_sampling itself rather than passed through.
MAPPED = ("do_sample", "temperature", "max_new_tokens", "num_beams")
API_SETTINGS = MAPPED + tuple(CHAT_PARAMETERS) + tuple(SERVER_EXTENSIONS)
# Request fields the arena sets itself: extra_body must not override them behind generation_config's back.
OWN_FIELDS = ("model", "messages", "temperature", "max_tokens", "stream", "n",
              *CHAT_PARAMETERS.values(), *SERVER_EXTENSIONS.values())


@dataclass(frozen=True)
class ChatSampling:
    """The sampling part of every request: ``temperature``, ``max_tokens`` and the other fields."""

    temperature: float
    max_tokens: int
    body: dict  # extra request fields (sent through the client's extra_body)


def chat_sampling(generation_config: dict, extra_body: dict | None = None) -> ChatSampling:
    """Map a candidate's ``generation_config`` onto chat-completions arguments.

    ``do_sample: false`` means greedy (temperature 0); otherwise ``temperature`` is sent as given
    (default 0, greedy as with transformers, or 1.0 with ``do_sample: true``). ``max_new_tokens``
    becomes ``max_tokens`` (default 256). Only settings the config names are sent, so the server's own
    defaults hold for the rest. Raises ``UnsupportedSetting`` for what no chat endpoint takes.
    """
    for key in generation_config:
        if key not in API_SETTINGS:
            raise UnsupportedSetting(key, "not a setting an API candidate can send; expected one of "
                                          f"{', '.join(API_SETTINGS)} (other request fields go in api.extra_body)")
    if generation_config.get("num_beams", 1) != 1:
        raise UnsupportedSetting("num_beams", "expected 1: chat-completions APIs do not do beam search")
    _check_types(generation_config)
    do_sample = generation_config.get("do_sample")
    if do_sample is False:
        temperature = 0.0
    elif generation_config.get("temperature") is not None:
        temperature = float(generation_config["temperature"])
    else:
        temperature = 1.0 if do_sample else 0.0
    max_tokens = with_defaults(generation_config)["max_new_tokens"]
    body = {wire: generation_config[key] for key, wire in {**CHAT_PARAMETERS, **SERVER_EXTENSIONS}.items()
            if generation_config.get(key) is not None}
    for key, value in (extra_body or {}).items():
        body.setdefault(key, value)
    return ChatSampling(temperature, int(max_tokens), body)


def _check_types(generation_config: dict) -> None:
    """Types of the settings check_generation_settings leaves alone (it checks the transformers ones)."""
    for key in ("presence_penalty", "frequency_penalty"):
        value = generation_config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not -2 <= value <= 2):
            raise UnsupportedSetting(key, f"expected a number between -2 and 2, got {excerpt(value)}")
    seed = generation_config.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise UnsupportedSetting("seed", f"expected an integer, got {excerpt(seed)}")
    min_p = generation_config.get("min_p")
    if min_p is not None and (isinstance(min_p, bool) or not isinstance(min_p, (int, float)) or not 0 <= min_p <= 1):
        raise UnsupportedSetting("min_p", f"expected a number between 0 and 1, got {excerpt(min_p)}")
    stop = generation_config.get("stop")
    if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list) and stop
                                                          and all(isinstance(s, str) for s in stop))):
        raise UnsupportedSetting("stop", f"expected a string or a list of strings, got {excerpt(stop)}")


# --------------------------------------------------------------------------------------------------
# The vLLM backend (vllm_backend.py loads vLLM; this mapping is plain Python)

# The generation_config settings this backend honours (transformers' names).
VLLM_SETTINGS = ("do_sample", "max_new_tokens", "min_new_tokens", "temperature", "top_k", "top_p", "min_p",
                 "repetition_penalty", "num_beams", "stop_strings")
# What a checkpoint's generation_config.json may decide when the arena config does not.
MODEL_DEFAULT_KEYS = ("do_sample", "temperature", "top_k", "top_p", "min_p", "repetition_penalty")
# transformers' own defaults for what neither the config nor the checkpoint sets.
TRANSFORMERS_DEFAULTS = {"temperature": 1.0, "top_k": 50, "top_p": 1.0}
# vllm.LLM arguments the arena sets from the model entry: one place for each (the key to use instead).
OWN_ARGS = {"model": "model_id_or_path", "revision": "revision", "trust_remote_code": "trust_remote_code",
            "dtype": "precision", "seed": "rating_gen.seed"}


def sampling_kwargs(settings: dict, model_defaults: dict | None = None, seed: int | None = None) -> dict:
    """``vllm.SamplingParams`` keyword arguments for a candidate's ``generation_config``.

    ``model_defaults``: the checkpoint's generation_config.json, consulted for what ``settings`` leaves
    out, as transformers does. Raises ``UnsupportedSetting`` for a setting vLLM cannot honour.
    """
    for key in settings:
        if key not in VLLM_SETTINGS:
            raise UnsupportedSetting(key, f"not supported by the vllm backend; expected one of {', '.join(VLLM_SETTINGS)}")
    if settings.get("num_beams", 1) != 1:
        raise UnsupportedSetting("num_beams", "expected 1: the vllm backend does not do beam search "
                                              "(use backend: transformers for it)")
    defaults = {k: v for k, v in (model_defaults or {}).items() if k in MODEL_DEFAULT_KEYS and v is not None}
    merged = {**TRANSFORMERS_DEFAULTS, **defaults, **{k: v for k, v in settings.items() if v is not None}}
    kwargs: dict = {"max_tokens": int(with_defaults(settings)["max_new_tokens"])}
    if settings.get("min_new_tokens"):
        kwargs["min_tokens"] = int(settings["min_new_tokens"])
    if merged.get("do_sample"):
        kwargs["temperature"] = float(merged["temperature"])
        kwargs["top_p"] = float(merged["top_p"])
        kwargs["top_k"] = int(merged["top_k"]) or -1  # transformers' 0 means "no top-k"; vLLM's is -1
        if merged.get("min_p"):
            kwargs["min_p"] = float(merged["min_p"])
    else:
        kwargs["temperature"] = 0.0  # greedy
    if merged.get("repetition_penalty") not in (None, 1.0):
        kwargs["repetition_penalty"] = float(merged["repetition_penalty"])
    stop = settings.get("stop_strings")
    if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(x, str) for x in stop))):
        raise UnsupportedSetting("stop_strings", f"expected a string or a list of strings, got {excerpt(stop)}")
    if stop:
        kwargs["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if seed is not None:
        kwargs["seed"] = int(seed)
    check_sampling_params(kwargs)
    return kwargs


# vLLM 0.33's SamplingParams._verify_args, as (SamplingParams key, generation_config key, rule): vLLM
# raises these only when a request is built, after the engine has loaded.
VLLM_RANGES = (
    ("temperature", "temperature", _between(0, 2)),
    ("top_p", "top_p", _between(0, 1, low_open=True)),
    ("top_k", "top_k", Rule(_INT, "an integer >= 0 (0 means no top-k)", lambda v: v >= -1)),
    ("min_p", "min_p", _between(0, 1)),
    ("repetition_penalty", "repetition_penalty", Rule(_NUMBER, "a positive number", lambda v: v > 0)),
    ("max_tokens", "max_new_tokens", _positive_int()),
    ("min_tokens", "min_new_tokens", _count("a non-negative integer")),
)


def check_sampling_params(kwargs: dict) -> None:
    """The ranges vLLM's ``SamplingParams`` enforces, checked on its keyword arguments (the values the
    checkpoint's generation_config.json filled in included); ``UnsupportedSetting`` names the
    generation_config key."""
    for name, key, rule in VLLM_RANGES:
        if kwargs.get(name) is not None:
            problem = problem_with(kwargs[name], rule)
            if problem:
                raise UnsupportedSetting(key, f"{problem} (vLLM's SamplingParams range)")
    if kwargs.get("min_tokens", 0) > kwargs["max_tokens"]:
        raise UnsupportedSetting("min_new_tokens", f"expected at most max_new_tokens ({kwargs['max_tokens']}), "
                                                   f"got {kwargs['min_tokens']}")


# --------------------------------------------------------------------------------------------------
# The typed settings every backend consumes


def with_defaults(settings: Mapping) -> dict:
    """The settings with ``DEFAULTS`` filled in where they are missing (or null)."""
    return {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None or k not in DEFAULTS}}


@dataclass(frozen=True)
class GenerationSettings:
    """A candidate's ``generation_config`` (checked by the config reader), as every backend takes it.

    ``given`` is what the config wrote, unchanged: the answers' cache keys and records keep it, so a
    default changed here never passes for a setting the user chose. ``resolved`` adds ``DEFAULTS``.
    """

    given: Mapping = field(default_factory=dict)

    @property
    def resolved(self) -> dict:
        return with_defaults(self.given)

    @property
    def max_new_tokens(self) -> int:
        return int(self.resolved["max_new_tokens"])

    def for_transformers(self) -> dict:
        """``transformers.GenerationConfig`` keyword arguments."""
        return self.resolved

    def for_vllm(self, model_defaults: dict | None = None, seed: int | None = None) -> dict:
        """``vllm.SamplingParams`` keyword arguments (``sampling_kwargs``)."""
        return sampling_kwargs(dict(self.given), model_defaults, seed)

    def for_chat(self, extra_body: dict | None = None) -> ChatSampling:
        """The sampling part of an API candidate's requests (``chat_sampling``)."""
        return chat_sampling(dict(self.given), extra_body)

    @classmethod
    def for_judge(cls, max_tokens: int, temperature: float) -> "GenerationSettings":
        """The local judge's: its ``max_tokens`` bounds each review (whatever the checkpoint's defaults
        say), greedy unless its ``temperature`` asks for sampling."""
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        return cls({"max_new_tokens": max_tokens, **sampling})
