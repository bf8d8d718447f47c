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
    vllm.SHUTDOWNS.clear()
    yield vllm
    for name in [name for name in sys.modules if name == "vllm" or name.startswith("vllm.")]:
        sys.modules.pop(name)


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


# -------------------------------------------------------------------------------------------------
# Issue 18: what vLLM 0.33 refuses is refused before any model loads; the stand-in refuses it as vLLM does


def vllm_candidates(project, count: int = 2, **entry) -> dict:
    config = project.config(questions=1, models=("tiny-a",))
    config["reviews_gen"]["enable"] = False
    base = config["answers_gen"].pop("tiny-a")
    for i in range(count):
        config["answers_gen"][f"engine-{i}"] = {**base, "backend": "vllm", "output_file": f"answers/e{i}.jsonl",
                                                **entry}
    return config


@pytest.mark.parametrize("entry, key, expected", [
    ({"vllm_args": {"swap_space": 4}}, "vllm_args.swap_space", "not an argument of this vLLM's EngineArgs"),
    ({"vllm_args": {"max_seq_len_to_capture": 8192}}, "vllm_args.max_seq_len_to_capture", "EngineArgs"),
    ({"vllm_args": {"gpu_memory_utilisation": 0.5}}, "vllm_args.gpu_memory_utilisation",
     "did you mean 'gpu_memory_utilization'"),
    ({"generation_config": {"do_sample": True, "temperature": 2.5}}, "generation_config.temperature",
     "expected a number in [0, 2], got 2.5 (vLLM's SamplingParams range)"),
])
def test_what_vllm_refuses_is_refused_before_any_model_loads(arena_project, vllm_standin, entry, key, expected):
    arena_project.write(vllm_candidates(arena_project, **entry))
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = [text for text in result.stderr.lines if text.startswith("ERROR:")]
    assert len(line) == 1 and "cfg_arena.yaml" in line[0] and key in line[0] and expected in line[0], line
    assert vllm_standin.CREATED == [] and "Traceback" not in result.stderr.str()


def test_checkpoint_defaults_out_of_vllms_range_are_refused_before_load(arena_project, vllm_standin):
    folder = arena_project.root / "hot-checkpoint"
    shutil.copytree(arena_project.models["tiny-a"], folder)
    # transformers takes a temperature of 3; vLLM's SamplingParams refuses it once the engine is up.
    (folder / "generation_config.json").write_text('{"do_sample": true, "temperature": 3.0}', encoding="utf-8")
    arena_project.write(vllm_candidates(arena_project, model_id_or_path=str(folder),
                                        generation_config={"max_new_tokens": 4}))
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("ERROR: *cfg_arena.yaml: answers_gen.engine-0: generation_config.temperature: "
                                  "expected a number in ?0, 2?, got 3.0*generation_config.json*")])
    assert vllm_standin.CREATED == []


def test_two_vllm_models_in_one_run_each_shut_down_before_the_next_loads(arena_project, vllm_standin):
    arena_project.write(vllm_candidates(arena_project, generation_config={"max_new_tokens": 4}))
    result = arena_project.run()
    result.assert_outcomes(passed=1)  # reviews off: the one battle passes once its answers exist
    assert [c["model"] for c in vllm_standin.CREATED] == [str(arena_project.models["tiny-a"])] * 2
    # The V1 engine core is shut down and the model-parallel groups torn down after each model.
    assert vllm_standin.SHUTDOWNS == ["engine_core", "destroy_model_parallel", "destroy_distributed_environment"] * 2
    for i in range(2):
        assert len(arena_project.read_jsonl(f"answers/e{i}.jsonl")) == 1


def test_the_standin_refuses_and_honours_what_vllm_does(tiny_models, vllm_standin):
    import torch

    with pytest.raises(TypeError):
        vllm_standin.LLM(str(tiny_models["tiny-a"]), swap_space=4)
    for bad in ({"min_tokens": 16, "max_tokens": 8}, {"temperature": -0.1}, {"temperature": 2.5}, {"top_p": 0.0},
                {"top_k": -2}, {"min_p": 1.5}, {"repetition_penalty": 0.0}, {"max_tokens": 0}, {"stop": [""]}):
        with pytest.raises(ValueError):
            vllm_standin.SamplingParams(**bad)
    llm = vllm_standin.LLM(str(tiny_models["tiny-a"]), dtype="auto", max_model_len=8)
    assert llm.dtype == torch.bfloat16  # a float32 checkpoint under dtype "auto", as vLLM runs it
    with pytest.raises(ValueError, match="longer than the maximum model length of 8"):
        llm.generate([{"prompt_token_ids": list(range(3, 12))}], vllm_standin.SamplingParams(max_tokens=2))
    greedy = vllm_standin.SamplingParams(temperature=0.0, max_tokens=12, min_tokens=12)
    text = llm.generate([{"prompt_token_ids": [5, 6, 7]}], greedy)[0].outputs[0].text
    assert len(text) > 2
    stop = text[len(text) // 2:len(text) // 2 + 2]
    stopped = llm.generate([{"prompt_token_ids": [5, 6, 7]}], vllm_standin.SamplingParams(
        temperature=0.0, max_tokens=12, min_tokens=12, stop=[stop]))[0].outputs[0].text
    assert stopped == text[:text.find(stop)]
