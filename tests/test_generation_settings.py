"""A candidate's ``generation_config`` mapped onto what each backend takes: chat-completions request
arguments for a candidate behind an API (``chat_sampling``), ``vllm.SamplingParams`` arguments for the
vLLM backend (``sampling_kwargs``). Plain functions: no server, no vLLM."""

from __future__ import annotations

import pytest

from pytest_arena.errors import UnsupportedSetting
from pytest_arena.config.generation import chat_sampling, sampling_kwargs


@pytest.mark.parametrize("generation, temperature", [
    ({}, 0.0),                                          # greedy, as transformers without do_sample
    ({"do_sample": False, "temperature": 0.9}, 0.0),    # do_sample false wins
    ({"do_sample": True}, 1.0),
    ({"temperature": 0.7}, 0.7),                        # an API config names only the temperature
    ({"do_sample": True, "temperature": 0.3}, 0.3),
])
def test_chat_sampling_temperature(generation, temperature):
    sampling = chat_sampling(generation)
    assert sampling.temperature == temperature
    assert sampling.max_tokens == 256 and sampling.body == {}


@pytest.mark.parametrize("settings, defaults, expected", [
    # transformers' reading: greedy unless do_sample
    ({}, {}, {"max_tokens": 256, "temperature": 0.0}),
    ({"temperature": 0.7, "max_new_tokens": 64}, {}, {"max_tokens": 64, "temperature": 0.0}),
    # sampling takes transformers' defaults for what nothing sets
    ({"do_sample": True}, {}, {"max_tokens": 256, "temperature": 1.0, "top_p": 1.0, "top_k": 50}),
    # ... and the checkpoint's generation_config.json before those
    ({"do_sample": True}, {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05},
     {"max_tokens": 256, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}),
    ({}, {"do_sample": True, "temperature": 0.6, "max_new_tokens": 2048},  # the checkpoint samples; its length does not count
     {"max_tokens": 256, "temperature": 0.6, "top_p": 1.0, "top_k": 50}),
    # the config wins over the checkpoint
    ({"do_sample": False}, {"do_sample": True, "temperature": 0.6, "repetition_penalty": 1.1},
     {"max_tokens": 256, "temperature": 0.0, "repetition_penalty": 1.1}),
    ({"do_sample": True, "top_k": 0, "top_p": 0.9, "temperature": 0.5, "min_p": 0.05}, {"top_k": 20},
     {"max_tokens": 256, "temperature": 0.5, "top_p": 0.9, "top_k": -1, "min_p": 0.05}),
    ({"min_new_tokens": 8, "max_new_tokens": 16, "stop_strings": "\n\n", "num_beams": 1}, {},
     {"max_tokens": 16, "min_tokens": 8, "temperature": 0.0, "stop": ["\n\n"]}),
])
def test_sampling_kwargs_follow_transformers(settings, defaults, expected):
    assert sampling_kwargs(settings, defaults) == expected


def test_sampling_kwargs_carry_the_seed():
    assert sampling_kwargs({"do_sample": True}, seed=7)["seed"] == 7
    assert "seed" not in sampling_kwargs({})


@pytest.mark.parametrize("mapping, settings, key, says", [
    (chat_sampling, {"num_beams": 4}, "num_beams", "beam search"),
    (chat_sampling, {"no_repeat_ngram_size": 3}, "no_repeat_ngram_size", "api.extra_body"),
    (chat_sampling, {"stop": 5}, "stop", "a string or a list of strings"),
    (chat_sampling, {"presence_penalty": 3}, "presence_penalty", "between -2 and 2"),
    (chat_sampling, {"seed": 1.5}, "seed", "an integer"),
    (sampling_kwargs, {"num_beams": 4}, "num_beams", "beam search"),
    (sampling_kwargs, {"no_repeat_ngram_size": 3}, "no_repeat_ngram_size", "not supported by the vllm backend"),
    (sampling_kwargs, {"stop_strings": 3}, "stop_strings", "a string or a list of strings"),
], ids=lambda value: getattr(value, "__name__", None))
def test_settings_a_backend_cannot_honour_are_refused(mapping, settings, key, says):
    with pytest.raises(UnsupportedSetting) as caught:
        mapping(settings)
    assert caught.value.key == key and says in caught.value.problem


@pytest.mark.parametrize("text, stop, expected", [
    ("one two\n\nthree", "\n\n", "one two"),
    ("one END two STOP", ["STOP", "END"], "one "),   # the first stop string in the text, whichever is listed first
    ("no stop here", ["END"], "no stop here"),
    ("END at once", "END", ""),
    ("unchanged", None, "unchanged"),
])
def test_transformers_answers_end_before_the_stop_string_as_vllm_and_apis_do(text, stop, expected):
    from pytest_arena.generation.transformers_backend import cut_at_stop

    assert cut_at_stop(text, stop) == expected
