"""What the config package promises beyond single keys: gates named for what they judge, a corrupt
data file told apart from a wrong config, the config read without any generation backend, and one
list of the files that make a checkpoint (the checks and the answer cache key read the same list)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_config import base_config, write_config

from pytest_arena.config import GateSpec, checkpoint_problem, load_config
from pytest_arena.errors import ArenaConfigError, ArenaDataError
from pytest_arena.generation.fingerprint import DigestMemo, checkpoint_fingerprint
from pytest_arena.judging.templates import load_templates
from pytest_arena.questions import load_questions
from pytest_arena.record_files import read_jsonl


def test_min_rating_gate_is_the_min_elo_gate(tmp_path):
    data = base_config()
    data["gates"] = [{"model": "m1", "min_rating": 1010}, {"model": "m2", "min_elo": 990}]
    gates = load_config(write_config(tmp_path, data)).gates
    # Same field, same kind, same item ID: a config may use either name.
    assert gates == (GateSpec("m1", min_elo=1010.0), GateSpec("m2", min_elo=990.0))
    assert [repr(g) for g in gates] == ["elo-m1", "elo-m2"]


@pytest.mark.parametrize("gate, where, expected", [
    ({"model": "m1", "min_rating": 1000, "min_elo": 1000}, "gates[0]",
     ["expected exactly one threshold: min_rating, min_elo, beats", "got min_rating, min_elo"]),
    ({"model": "m1", "min_rating": "high"}, "gates[0].min_rating", ["expected a number", "'high'"]),
    ({"model": "m1", "min_ratin": 1000}, "gates[0].min_ratin", ["unknown key", "did you mean 'min_rating'?"]),
])
def test_min_rating_mistakes(tmp_path, gate, where, expected):
    data = base_config()
    data["gates"] = [gate]
    with pytest.raises(ArenaConfigError) as caught:
        load_config(write_config(tmp_path, data))
    assert caught.value.where == where
    for text in expected:
        assert text in caught.value.problem


def _corrupt(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("read, text, where, problem", [
    (load_questions, '{"question_id": 1, "text": "Hi?"}\n{"question_id": 2, "te\n', "line 2", "invalid JSON"),
    (load_questions, '{"question_id": 1, "text": ""}\n', "line 1", "text: expected a non-empty string"),
    (read_jsonl, '{"model_id": "a"}\n[1, 2]\n', "line 2", "expected a JSON object"),
    (read_jsonl, '{"model_id": "a"}\nnot json\n', "line 2", "not a JSON record"),
    (load_templates, '{"name": "t", "type": "pairwise"\n', "line 1", "invalid JSON"),
])
def test_a_corrupt_data_file_is_a_data_error(tmp_path, read, text, where, problem):
    path = _corrupt(tmp_path, "data.jsonl", text)
    with pytest.raises(ArenaDataError) as caught:
        read(path)
    # Still a usage error (the plugin maps ArenaConfigError to one ERROR line), naming the data file.
    assert isinstance(caught.value, ArenaConfigError)
    assert caught.value.file == str(path) and caught.value.where == where and problem in caught.value.problem


def test_a_wrong_config_is_not_a_data_error(tmp_path):
    data = base_config()
    data["rating_gen"]["elo_k"] = -1
    with pytest.raises(ArenaConfigError) as caught:
        load_config(write_config(tmp_path, data))
    assert not isinstance(caught.value, ArenaDataError)


def test_reading_a_config_imports_no_generation_module():
    # config validates sampling settings with the pure mappers of config/generation.py; the generation
    # backends consume config's GenerationSettings, so config importing any of them would be an arrow up.
    code = ("import json, sys, pytest_arena.config; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pytest_arena.generation.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_every_tokenizer_file_a_checkpoint_may_have_keys_its_answers(tmp_path):
    # A SentencePiece checkpoint (spiece.model, T5-style) passes the folder check with that file as its
    # only tokenizer; a new spiece.model must then give the checkpoint a new fingerprint.
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "spiece.model").write_bytes(b"vocabulary one")
    assert checkpoint_problem(folder, None) is None
    memo = DigestMemo()
    before = checkpoint_fingerprint(str(folder), None, None, memo)
    (folder / "spiece.model").write_bytes(b"vocabulary two, longer")
    assert checkpoint_fingerprint(str(folder), None, None, memo) != before
