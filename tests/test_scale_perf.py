"""Scale without paying twice (issue 19): generation batches sorted by prompt length give the same
answers as question order; checkpoint digests remembered beside the answers; a cheap cached-call count."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd  # noqa: F401 - two in-process arenas in one module (COMMON.md)
import pytest
from support.arena_project import fixed_answers_config
from support.tiny_models import build_tiny_model

from pytest_arena.config import ModelSpec
from pytest_arena.file_names import cached_count_file as count_file
from pytest_arena.file_names import digests_file
from pytest_arena.generation.answers import ModelAnswers, batch_order, longest_first
from pytest_arena.generation.fingerprint import DigestMemo, checkpoint_fingerprint
from pytest_arena.generation.transformers_backend import TransformersGenerator
from pytest_arena.questions import Question
from pytest_arena.record_files import read_jsonl

GREEDY = {"do_sample": False, "max_new_tokens": 6}
# Short and long prompts interleaved: in question order every batch of two pads a short one to a long one.
TEXTS = ["Hi", "Describe, in a few careful sentences, how a bicycle gear train trades cadence for force.",
         "Why?", "Explain the water cycle to a curious ten year old who likes rain and rivers and clouds.",
         "Name a colour.", "List three prime numbers."]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("sort-model") / "chat", seed=3)


class BatchRecorder(TransformersGenerator):
    """The real generator, noting the first-turn prompt of each question in every batch it is given."""

    def __init__(self, spec):
        super().__init__(spec)
        self.batches: list[list[str]] = []

    def generate(self, conversations, seed):
        self.batches.append([c[0]["content"] for c in conversations])
        return super().generate(conversations, seed)


def generate_all(checkpoint: Path, output: Path, sort_by_length: bool):
    spec = ModelSpec(name="tiny", path=str(checkpoint), output_file=output, generation_config=dict(GREEDY),
                     batch_size=2, precision="float32", device="cpu")
    questions = [Question(i, (text,)) for i, text in enumerate(TEXTS, start=1)]
    answers = ModelAnswers("tiny", output, spec, 0, DigestMemo())
    generator = BatchRecorder(spec)
    try:
        answers.generate(questions, generator, lambda line: None, sort_by_length=sort_by_length)
    finally:
        generator.close()
    return {r["question_id"]: r for r in read_jsonl(output)}, generator.batches


def padded_tokens(batches: list[list[str]], prompt_tokens: dict[str, int]) -> int:
    """Prompt positions a left-padded batch computes: its size times its longest prompt."""
    return sum(len(batch) * max(prompt_tokens[text] for text in batch) for batch in batches)


def test_sorted_batches_give_the_same_greedy_answers_with_less_padding(checkpoint, tmp_path):
    unsorted, unsorted_batches = generate_all(checkpoint, tmp_path / "unsorted.jsonl", sort_by_length=False)
    by_length, sorted_batches = generate_all(checkpoint, tmp_path / "sorted.jsonl", sort_by_length=True)

    assert sorted_batches != unsorted_batches  # the batch composition really changed
    assert unsorted_batches[0] == TEXTS[:2] and set(sorted_batches[0]) == {TEXTS[1], TEXTS[3]}
    assert sorted(by_length) == sorted(unsorted) == list(range(1, len(TEXTS) + 1))
    for question_id, record in unsorted.items():
        # Byte for byte, and each answer under its own question's id.
        assert by_length[question_id]["answer"] == record["answer"]
        assert by_length[question_id]["text"] == TEXTS[question_id - 1]
        assert by_length[question_id]["metadata"]["cache_key"] == record["metadata"]["cache_key"]
        assert by_length[question_id]["metadata"]["prompt_tokens"] == record["metadata"]["prompt_tokens"]
    assert any(r["answer"].strip() for r in unsorted.values())
    tokens = {r["text"]: r["metadata"]["prompt_tokens"] for r in unsorted.values()}
    assert padded_tokens(sorted_batches, tokens) < padded_tokens(unsorted_batches, tokens)


def test_longest_first_keeps_the_order_of_equal_lengths():
    questions = [Question(1, ("ab",)), Question(2, ("abcd",)), Question(3, ("cd",)), Question(4, ("xyzw",))]
    assert [q.question_id for q in longest_first(questions)] == [2, 4, 1, 3]


def test_question_order_is_kept_where_sorting_would_save_little_padding():
    alike = [Question(1, ("a" * 12,)), Question(2, ("b" * 13,)), Question(3, ("c" * 13,))]
    assert batch_order(alike, 2) == alike  # 38 padded characters sorted against 39: the file keeps its order
    mixed = [Question(1, ("a" * 2,)), Question(2, ("b" * 80,)), Question(3, ("c" * 3,)), Question(4, ("d" * 80,))]
    assert [q.question_id for q in batch_order(mixed, 2)] == [2, 4, 3, 1]


# --------------------------------------------------------------------------------------------------
# Checkpoint digests kept beside the answers


def fingerprint_of(checkpoint: Path, memo: DigestMemo) -> str:
    return checkpoint_fingerprint(str(checkpoint), None, None, memo)


def test_digests_beside_the_answers_spare_a_run_without_pytest_cache_every_read(checkpoint, tmp_path):
    answers_file = tmp_path / "results" / "answers" / "answer_tiny.jsonl"
    first = DigestMemo(tmp_path / "cache-1" / "fingerprints.json").beside(answers_file)
    digest = fingerprint_of(checkpoint, first)
    assert first.hashed >= 3  # weights, config, tokenizer: read once
    assert digests_file(answers_file).is_file()

    # A new machine: pytest's cache is gone (another folder, empty), results/ kept.
    second = DigestMemo(tmp_path / "cache-2" / "fingerprints.json").beside(answers_file)
    assert fingerprint_of(checkpoint, second) == digest
    assert second.hashed == 0 and second.fallback.hashed == 0


def test_a_changed_checkpoint_file_is_hashed_again_and_its_old_entry_dropped(tmp_path):
    model = build_tiny_model(tmp_path / "model", seed=4)
    answers_file = tmp_path / "answer_tiny.jsonl"
    digest = fingerprint_of(model, DigestMemo().beside(answers_file))
    entries = len(json.loads(digests_file(answers_file).read_text()))
    config = model / "config.json"
    config.write_text(config.read_text() + "\n")  # size and mtime change

    memo = DigestMemo().beside(answers_file)
    assert fingerprint_of(model, memo) != digest
    assert memo.hashed == 1  # only the file that changed
    assert len(json.loads(digests_file(answers_file).read_text())) == entries  # one entry per file


def test_without_pytest_cache_a_run_takes_digests_from_beside_the_answers(arena_project):
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-b"))
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=2)
    shutil.rmtree(arena_project.root / ".pytest_cache")
    # The weights' bytes change in place, their size, mtime and inode kept: a run that read the file
    # would get another fingerprint, miss the answer cache and load the model again.
    weights = next(Path(arena_project.models["tiny-a"]).glob("*.safetensors"))
    before = weights.stat()
    original = weights.read_bytes()
    try:
        with open(weights, "r+b") as handle:
            handle.seek(before.st_size - 4)
            handle.write(bytes(b ^ 0xFF for b in original[-4:]))
        os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert (weights.stat().st_ino, weights.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

        second = arena_project.run()
    finally:
        weights.write_bytes(original)
        os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))

    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["models loaded: none (all answers cached)"])


def test_a_k_run_hashes_only_the_models_its_items_need(arena_project):
    config = arena_project.config(questions=2)
    arena_project.write(config)

    result = arena_project.run("-k", "tiny-a and tiny-b")

    result.assert_outcomes(passed=2)
    assert digests_file(arena_project.root / "answers/answer_tiny-a.jsonl").is_file()
    assert not digests_file(arena_project.root / "answers/answer_tiny-c.jsonl").exists()
    remembered = (arena_project.root / ".pytest_cache").rglob("fingerprints.json")
    hashed = " ".join(key for memo in remembered for key in json.loads(memo.read_text()))
    assert str(arena_project.models["tiny-a"].resolve()) in hashed
    assert str(arena_project.models["tiny-c"].resolve()) not in hashed


# --------------------------------------------------------------------------------------------------
# --collect-only's count of cached judge calls


def test_collect_only_keeps_its_exact_count_and_recounts_once_the_reviews_change(arena_project):
    config = fixed_answers_config(arena_project, 3, {"long": 9, "mid": 5, "short": 2})
    arena_project.write(config)
    review_file = arena_project.root / "reviews/review_gpt4.jsonl"
    kept = count_file(review_file)

    arena_project.run().assert_outcomes(passed=9)
    kept.unlink(missing_ok=True)
    selected = arena_project.run("--collect-only", "-k", "q001 or q002")
    selected.stdout.fnmatch_lines(["arena: plan: 6 battles, 0 gates; 6 judge calls (6 cached, 0 to make)*"])
    assert not kept.exists()  # a subset's count is not the plan's: nothing kept

    exact = arena_project.run("--collect-only")
    exact.stdout.fnmatch_lines(["arena: plan: 9 battles, 0 gates; 9 judge calls (9 cached, 0 to make)*"])
    data = json.loads(kept.read_text())
    assert sorted(data["counts"].values()) == [1] * 9

    # The kept counts are what the next count reads: shown by a count no review file could give.
    data["counts"] = {match_id: 2 for match_id in data["counts"]}
    kept.write_text(json.dumps(data))
    arena_project.run("--collect-only").stdout.fnmatch_lines(["*9 judge calls (18 cached, -9 to make)*"])

    # A review file that changed (here: the record of one battle lost) is counted exactly again.
    records = review_file.read_text().splitlines(keepends=True)
    review_file.write_text("".join(records[1:]))
    arena_project.run("--collect-only").stdout.fnmatch_lines(["*9 judge calls (8 cached, 1 to make)*"])


def test_a_review_file_changed_after_its_checks_were_kept_is_checked_again_in_full(arena_project):
    config = fixed_answers_config(arena_project, 3, {"long": 9, "mid": 5, "short": 2})
    arena_project.write(config)
    review_file = arena_project.root / "reviews/review_gpt4.jsonl"
    arena_project.run().assert_outcomes(passed=9)
    arena_project.run("--collect-only").stdout.fnmatch_lines(["*9 judge calls (9 cached, 0 to make)*"])
    checked = json.loads(count_file(review_file).read_text())["checked"]
    assert checked[1:3] == [review_file.stat().st_ino, review_file.stat().st_size]  # kept: these bytes passed
    original = review_file.read_bytes()

    # A corrupt line appended after the kept count: the file is read whole again, and refused.
    review_file.write_bytes(original + b'{"question_id": 1, oops}\n')
    appended = arena_project.run("--collect-only")
    assert appended.ret == 4
    appended.stderr.fnmatch_lines([f"ERROR: {review_file}: line 10: not a JSON record*"])

    # A line broken in place, the file's size, inode and mtime kept: its ctime still tells it apart.
    review_file.write_bytes(original)
    arena_project.run("--collect-only").stdout.fnmatch_lines(["*9 judge calls (9 cached, 0 to make)*"])
    before = review_file.stat()
    with open(review_file, "r+b") as handle:
        handle.seek(original.index(b"\n") + 1)  # the start of line 2
        handle.write(b"#")
    os.utime(review_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (review_file.stat().st_size, review_file.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    in_place = arena_project.run("--collect-only")
    assert in_place.ret == 4
    in_place.stderr.fnmatch_lines([f"ERROR: {review_file}: line 2: not a JSON record*"])
