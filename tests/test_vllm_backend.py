"""The vLLM generation backend (``backend: vllm``): the engine arguments, the answer cache key, and the
arena's wiring run end to end against a stand-in for the
``vllm`` package (tests/support/vllm_standin: vLLM itself cannot be installed on these CPU machines; the
error when it is missing is a case of tests/bad_inputs, ``backend-vllm-not-installed``)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from pytest_arena.config import ModelSpec, load_config
from pytest_arena.generation.answers import ModelAnswers
from pytest_arena.generation.fingerprint import DigestMemo
from pytest_arena.generation.vllm_backend import cache_relevant_args, llm_kwargs
from pytest_arena.questions import Question

STANDIN = Path(__file__).parent / "support" / "vllm_standin"
LOADING = re.compile(r"arena: (\S+): loading model \S+( with vLLM)?")


def test_llm_kwargs_pass_vllm_args_through(tmp_path):
    spec = ModelSpec(name="m", path="/ckpt/qwen2-7b", output_file=tmp_path / "a.jsonl", precision="bfloat16",
                     revision="v2", trust_remote_code=True, backend="vllm",
                     vllm_args={"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9, "max_model_len": 4096})
    assert llm_kwargs(spec) == {"model": "/ckpt/qwen2-7b", "dtype": "bfloat16", "revision": "v2",
                                "trust_remote_code": True, "tensor_parallel_size": 2,
                                "gpu_memory_utilization": 0.9, "max_model_len": 4096}


def test_answer_cache_key_tells_the_engines_apart_but_not_their_resources(tmp_path, tiny_models):
    question = Question(1, ("Hi?",))

    def key(backend="transformers", vllm_args=None):
        spec = ModelSpec(name="m", path=str(tiny_models["tiny-a"]), output_file=tmp_path / "a.jsonl",
                         backend=backend, vllm_args=vllm_args or {})
        return ModelAnswers("m", spec.output_file, spec, 0, DigestMemo()).key(question)

    vllm = key("vllm", {"tensor_parallel_size": 1})
    assert key() != vllm
    assert key("vllm", {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.5, "enforce_eager": True}) == vllm
    assert key("vllm", {"quantization": "fp8"}) != vllm
    assert cache_relevant_args({"max_model_len": 4096, "tensor_parallel_size": 8}) == {"max_model_len": 4096}


def test_config_reads_backend_and_vllm_args(tmp_path, tiny_models):
    (tmp_path / "q.jsonl").write_text('{"question_id": 1, "text": "Hi?"}\n', encoding="utf-8")
    entry = {"model_id_or_path": str(tiny_models["tiny-a"])}
    config = {"question_file": "q.jsonl", "answers_gen": {
        "engine": {**entry, "backend": "vllm", "vllm_args": {"tensor_parallel_size": 2}},
        "chunked": {**entry, "backend": "vllm", "batch_size": 32},
        "plain": entry,
    }}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    models = load_config(path).models
    assert (models["engine"].backend, models["engine"].vllm_args, models["engine"].batch_size) == \
        ("vllm", {"tensor_parallel_size": 2}, 256)
    assert models["chunked"].batch_size == 32
    assert (models["plain"].backend, models["plain"].vllm_args, models["plain"].batch_size) == ("transformers", {}, 8)


def adds_bos(source: Path, target: Path) -> Path:
    """A copy of a tiny checkpoint whose tokenizer puts BOS before every text it encodes, as Llama's does
    (the tiny tokenizer adds nothing, which would hide a BOS doubled in front of a chat template)."""
    from tokenizers import Tokenizer, processors

    shutil.copytree(source, target)
    tokenizer = Tokenizer.from_file(str(target / "tokenizer.json"))
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                             special_tokens=[("<s>", bos)])
    tokenizer.save(str(target / "tokenizer.json"))
    return target


@pytest.fixture
def vllm_standin(monkeypatch):
    """The stand-in ``vllm`` imported before the pytester run, so the run and the test share it."""
    monkeypatch.syspath_prepend(str(STANDIN))
    import vllm

    vllm.CREATED.clear()
    vllm.REQUESTS.clear()
    yield vllm
    sys.modules.pop("vllm", None)


def test_vllm_backend_prompts_the_same_tokens_as_transformers(arena_project, vllm_standin):
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-c"))
    config["reviews_gen"]["enable"] = False  # the answers are what is compared
    greedy = {"max_new_tokens": 12, "min_new_tokens": 12}
    for name in ("tiny-a", "tiny-c"):  # tiny-c has no chat template: the plain prompt, with BOS
        entry = config["answers_gen"][name]
        folder = adds_bos(arena_project.models[name], arena_project.root / f"{name}-bos")
        # One prompt at a time: no padding on either side.
        entry.update(model_id_or_path=str(folder), generation_config=greedy, batch_size=1)
        config["answers_gen"][f"{name}-vllm"] = {
            **entry, "backend": "vllm", "output_file": f"answers/answer_{name}-vllm.jsonl",
            "vllm_args": {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.5},
        }
        del config["answers_gen"][f"{name}-vllm"]["batch_size"]
    arena_project.write(config)

    result = arena_project.run()

    result.assert_outcomes(passed=12)  # 4 participants, 6 pairs, 2 questions
    loads = dict(LOADING.findall(result.stdout.str()))
    assert loads == {"tiny-a": "", "tiny-c": "", "tiny-a-vllm": " with vLLM", "tiny-c-vllm": " with vLLM"}
    assert [c["tensor_parallel_size"] for c in vllm_standin.CREATED] == [1, 1]
    assert {(c["dtype"], c["gpu_memory_utilization"]) for c in vllm_standin.CREATED} == {("float32", 0.5)}
    assert {(p.temperature, p.max_tokens, p.min_tokens) for p in vllm_standin.REQUESTS} == {(0.0, 12, 12)}
    for name in ("tiny-a", "tiny-c"):
        local = {r["question_id"]: r for r in arena_project.read_jsonl(f"answers/answer_{name}.jsonl")}
        engine = {r["question_id"]: r for r in arena_project.read_jsonl(f"answers/answer_{name}-vllm.jsonl")}
        assert sorted(engine) == [1, 2]
        for qid, record in engine.items():
            assert record["answer"].strip() and record["answer"] == local[qid]["answer"], (name, qid)
            assert record["metadata"]["backend"] == "vllm"
            assert record["metadata"]["cache_key"] != local[qid]["metadata"]["cache_key"]
    result.stdout.fnmatch_lines(["*tiny-c-vllm: the tokenizer has no chat template*"])

    rerun = arena_project.run()

    rerun.assert_outcomes(passed=12)
    assert LOADING.findall(rerun.stdout.str()) == []
    assert len(vllm_standin.CREATED) == 2
