"""The answers of one arena participant: read from its answers file, generated when missing.

A model's ``output_file`` is both EvalScope's answer file and the answer cache. A record is reused
when its ``metadata.cache_key`` matches: same checkpoint bytes, generation settings, prompt format,
question and seed (for a candidate behind an API: same served model name, server URL, request
settings and question). A participant without a model (``enable: false``, or a ``target_answers``
file) answers only from its file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import ModelSpec
from ..errors import ArenaDataError
from ..questions import Question
from ..record_files import JsonlAppender, cache_key
from .answer_formats import OURS, AnswerIndex, index_answers, read_answer_records, record_turns, seen_keys
from .fingerprint import DigestMemo, checkpoint_fingerprint


@dataclass(frozen=True)
class Answer:
    model: str
    question_id: int | str
    turns: tuple[str, ...]  # one answer per question turn

    @property
    def text(self) -> str:
        return self.turns[-1]


def answer_from_record(model: str, question: Question, record: dict, fmt: str = OURS) -> Answer:
    # The question's own id: a cached record may come from another question with the same text.
    turns = list(record_turns(fmt, record))
    if len(question.turns) == 1:
        # A single-turn question asked of a longer conversation: its answer is the first turn's.
        turns = turns[:1]
    # A null turn is no answer: it becomes "" (refused before judging), never the word "None".
    return Answer(model, question.question_id, tuple("" if t is None else str(t) for t in turns))


# Sorting costs the answers file its question order, so it is done only where it saves this much padding.
WORTH_SORTING = 0.9


def longest_first(questions: list[Question]) -> list[Question]:
    """``questions`` by the length of their first turn, longest first (ties keep their order).

    A batch is left-padded to its longest prompt, and every decoding step attends over the padding: with
    prompts of like length side by side, less of each batch is padding (bench/README.md, "Generation").
    Greedy answers do not depend on what shares their batch, so they come out the same (tests/
    test_scale_perf.py); answers keep their question ids, so nothing downstream sees the order. Characters
    stand in for tokens: the order only has to group like lengths, and it costs no tokenizer call.
    """
    return sorted(questions, key=lambda q: -len(q.turns[0]) if q.turns else 0)


def batch_order(questions: list[Question], size: int) -> list[Question]:
    """The order to generate in: ``longest_first`` where its batches pad at least 10% less than those of
    question order, else question order (the answers file then reads in question order, as EvalScope's)."""
    by_length = longest_first(questions)
    if _padded_length(by_length, size) <= WORTH_SORTING * _padded_length(questions, size):
        return by_length
    return list(questions)


def _padded_length(questions: list[Question], size: int) -> int:
    """Prompt characters the batches compute, each padded to its longest first turn."""
    lengths = [len(q.turns[0]) if q.turns else 0 for q in questions]
    return sum(len(lengths[i:i + size]) * max(lengths[i:i + size]) for i in range(0, len(lengths), size))


class ModelAnswers:
    """One participant's answers; generation happens only for questions the cache lacks."""

    def __init__(self, name: str, output_file: Path, spec: ModelSpec | None, seed: int, memo: DigestMemo):
        self.name = name
        self.output_file = Path(output_file)
        self.spec = spec if spec is not None and spec.enable else None
        self.seed = seed
        # A local checkpoint's digests are kept beside its answers (CI keeps results/, not .pytest_cache).
        self._memo = memo.beside(self.output_file) if self.spec is not None and self.spec.api is None else memo
        self._fingerprint: str | None = None
        self._answers: dict[int | str, Answer] = {}
        # Why a question has no answer (an API candidate's failed call), for the matches that needed it.
        self.failures: dict[int | str, str] = {}
        self._indexed: tuple[tuple, AnswerIndex] | None = None  # (which records, their index)

    @property
    def generates(self) -> bool:
        return self.spec is not None

    @property
    def served(self) -> bool:
        """Answered by a server over an OpenAI-compatible API, not by a local checkpoint."""
        return self.spec is not None and self.spec.api is not None

    def key(self, question: Question) -> str:
        if self.served:
            return self._served_key(question)
        if self._fingerprint is None:
            self._fingerprint = checkpoint_fingerprint(
                self.spec.path, self.spec.revision, self.spec.gguf_file, self._memo
            )
        return cache_key(
            kind="answer",
            checkpoint=self._fingerprint,
            revision=self.spec.revision,
            gguf_file=self.spec.gguf_file,
            precision=self.spec.precision,
            chat_template=self.spec.use_chat_template,
            generation_config=self.spec.generation_config,
            seed=self.seed,
            turns=list(question.turns),
            **self._backend_key_parts(),
        )

    def _backend_key_parts(self) -> dict:
        """Another engine writes other answers from the same weights and seed (transformers adds nothing,
        so the keys of existing answer files stay valid)."""
        if self.spec.backend == "transformers":
            return {}
        from .vllm_backend import cache_relevant_args

        return {"backend": self.spec.backend, "vllm_args": cache_relevant_args(self.spec.vllm_args)}

    def _served_key(self, question: Question) -> str:
        """No weights to hash: the served model's name, the server, the request's settings, the question."""
        from ..redact import public_url

        api = self.spec.api
        sampling = self.spec.generation.for_chat(api.extra_body)
        return cache_key(kind="answer", api_model=api.model, base_url=public_url(api.base_url),
                         temperature=sampling.temperature, max_tokens=sampling.max_tokens, request=sampling.body,
                         turns=list(question.turns))

    def may_generate(self, questions: list[Question]) -> bool:
        """Whether some answer may still have to be generated, found without reading a checkpoint whose
        digests are not remembered (``load_cached`` when they are; else True): preflight asks this of every
        model, a -k run included, and must not hash the models the selection will not need."""
        if not self.generates:
            return False
        if not self.served and self._fingerprint is None:
            fingerprint = checkpoint_fingerprint(self.spec.path, self.spec.revision, self.spec.gguf_file,
                                                 self._memo, hash_missing=False)
            if fingerprint is None:
                return True
            self._fingerprint = fingerprint
        return bool(self.load_cached(questions))

    def load_cached(self, questions: list[Question]) -> list[Question]:
        """Take what the answers file already holds; return the questions still unanswered."""
        # keep: preflight, the plan and the runner each ask; the file is parsed once while it is unchanged.
        records = read_answer_records(self.output_file, keep=True)
        if not self.generates:
            self._read_only(records, questions)
            return []
        by_key = {r.get("metadata", {}).get("cache_key"): r for r in records if isinstance(r.get("metadata"), dict)}
        missing = []
        for q in questions:
            record = by_key.get(self.key(q))
            if record is not None:
                self._answers[q.key] = answer_from_record(self.name, q, record)
            else:
                missing.append(q)
        return missing

    def read_only_index(self) -> AnswerIndex:
        """This participant's answers file, checked whole (``index_answers``: ArenaDataError on a record that
        names another model or has an id of the wrong type), when no model writes to it."""
        return self._index(read_answer_records(self.output_file, keep=True))

    def _index(self, records: list[dict]) -> AnswerIndex:
        # Plan, preflight and runner each read the file; while it is unchanged they get the very records
        # read_answer_records kept (the index holds them, so their ids are not reused), checked once.
        which = (len(records), id(records[0]) if records else None)
        if self._indexed is None or self._indexed[0] != which:
            self._indexed = (which, index_answers(self.output_file, records))
        return self._indexed[1]

    def _read_only(self, records: list[dict], questions: list[Question]) -> None:
        """Answers from a file no model writes to: ours, or another tool's (``answer_formats``)."""
        index = self._index(records)
        fmt, by_key = index.fmt, index.by_key
        if fmt == OURS:
            # Records of a set-less file answer a question of any set with that id.
            for q in questions:
                record = by_key.get(q.key) or by_key.get((None, q.question_id))
                if record is not None:
                    self._answers[q.key] = answer_from_record(self.name, q, record)
            return
        # Another tool's ids are matched as text (FastChat's 81, arena-hard's hex uids); AlpacaEval by the question.
        for q in questions:
            record = by_key.get(q.text if fmt == "alpaca_eval" else str(q.question_id))
            if record is not None:
                self._answers[q.key] = answer_from_record(self.name, q, record, fmt)
        if records and not self._answers:
            match = "instruction equal to a question's text" if fmt == "alpaca_eval" else "id of a question"
            raise ArenaDataError(self.output_file, "", f"read as {fmt} answers, but no record has the {match} of "
                                 f"the arena (keys seen: {', '.join(seen_keys(records))})")

    def generate(self, questions: list[Question], generator, log: Callable[[str], None],
                 sort_by_length: bool = True) -> None:
        """Answer ``questions`` with a loaded generator, one batch at a time, longest prompts first
        where that pads much less (``batch_order``).

        Each batch goes through all its turns (a later turn sees the model's own earlier answers,
        MT-bench style) and is appended to the answers file before the next starts, so a crash loses
        at most one batch.
        """
        appender = JsonlAppender(self.output_file)
        size = generator.spec.batch_size
        done = 0
        if sort_by_length:
            questions = batch_order(questions, size)
        try:
            for start in range(0, len(questions), size):
                chunk = questions[start:start + size]
                for question, record in zip(chunk, self._answer_batch(chunk, generator)):
                    appender.append(record)
                    self._answers[question.key] = answer_from_record(self.name, question, record)
                done += len(chunk)
                log(f"{self.name}: {done}/{len(questions)} answers generated")
        finally:
            appender.close()

    def _answer_batch(self, questions: list[Question], generator) -> list[dict]:
        conversations = {q.key: [] for q in questions}
        answers: dict[int | str, list[str]] = {q.key: [] for q in questions}
        tokens = {q.key: [0, 0] for q in questions}
        started = time.perf_counter()
        for turn in range(max(len(q.turns) for q in questions)):
            asking = [q for q in questions if turn < len(q.turns)]
            for q in asking:
                conversations[q.key].append({"role": "user", "content": q.turns[turn]})
            texts = generator.generate([conversations[q.key] for q in asking], seed=self.seed + turn)
            for q, out in zip(asking, texts):
                conversations[q.key].append({"role": "assistant", "content": out.text})
                answers[q.key].append(out.text)
                tokens[q.key][0] += out.prompt_tokens
                tokens[q.key][1] += out.completion_tokens
        seconds = (time.perf_counter() - started) / len(questions)
        backend = {} if self.spec.backend == "transformers" else {"backend": self.spec.backend}
        return [
            self._record(q, answers[q.key], {
                "model_path": self.spec.path,
                **backend,
                "generation_config": self.spec.generation_config,
                "chat_template": self.spec.use_chat_template and not generator.chat_template_missing,
                "seed": self.seed,
                "prompt_tokens": tokens[q.key][0],
                "completion_tokens": tokens[q.key][1],
                "seconds": round(seconds, 4),
            })
            for q in questions
        ]

    def _record(self, question: Question, turns: list[str], metadata: dict) -> dict:
        """An EvalScope answer record (``answer`` is the last turn's; ``answer_turns`` holds them all)."""
        record = {
            **question.to_record(),
            "model_id": self.name,
            "answer": turns[-1],
            "metadata": {"cache_key": self.key(question), **metadata},
        }
        if len(question.turns) > 1:
            record["answer_turns"] = list(turns)
        return record

    def ask(self, questions: list[Question], served, log: Callable[[str], None]) -> None:
        """Answer ``questions`` from an API candidate's server, up to its ``max_concurrency`` at a time.

        Each answer is appended to the answers file as it arrives. A question the server could not
        answer (after the client's retries) gets no record, so the next run asks again; its reason is
        kept in ``failures`` for the matches that needed it, and the other questions go on.
        """
        from concurrent.futures import ThreadPoolExecutor, as_completed

        from ..redact import public_url
        from .api_backend import AnswerFailed

        api = served.api
        appender = JsonlAppender(self.output_file)
        pool = ThreadPoolExecutor(max_workers=min(served.max_concurrency, len(questions)),
                                  thread_name_prefix=f"arena-{self.name}")
        step = max(1, len(questions) // 10)
        received = 0
        try:
            futures = {pool.submit(served.answer, q.turns): q for q in questions}
            for finished, future in enumerate(as_completed(futures), start=1):
                question = futures[future]
                try:
                    reply = future.result()
                except AnswerFailed as exc:
                    self.failures[question.key] = str(exc)
                    served.counters.add(failed=1)
                    log(f"{self.name}: no answer to question {question.question_id!r}: {exc}")
                    continue
                record = self._record(question, list(reply.turns), {
                    "api": {"base_url": public_url(api.base_url), "model": api.model},
                    "generation_config": self.spec.generation_config,
                    "request": {"temperature": served.sampling.temperature, "max_tokens": served.sampling.max_tokens,
                                **served.sampling.body},
                    "finish_reason": reply.finish_reason,
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": reply.completion_tokens,
                    "seconds": round(reply.seconds, 4),
                })
                appender.append(record)
                self._answers[question.key] = answer_from_record(self.name, question, record)
                self.failures.pop(question.key, None)
                served.counters.add(answered=1)
                received += 1
                if finished % step == 0 or finished == len(questions):
                    log(f"{self.name}: {received}/{len(questions)} answers received")
        finally:
            # Ctrl-C or a crash: questions not yet sent are dropped; what arrived is on disk already.
            pool.shutdown(wait=False, cancel_futures=True)
            appender.close()

    def get(self, question: Question) -> Answer | None:
        return self._answers.get(question.key)
