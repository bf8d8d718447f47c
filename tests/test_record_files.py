"""JSONL records on disk: one cache key function, crash-tolerant reading and appending, atomic writes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pytest_arena.config import DEFAULT_TEMPLATES
from pytest_arena.errors import ArenaConfigError, ArenaDataError
from pytest_arena.judging.templates import load_templates
from pytest_arena.questions import load_questions
from pytest_arena.record_files import (JsonlAppender, JsonlFollower, cache_key, file_lock, foreign_content, read_jsonl,
                                record_lines, write_atomic)


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


# --------------------------------------------------------------------------------------------------
# cache_key


def test_cache_key_ignores_dict_order():
    a = cache_key(kind="answer", config={"top_k": 20, "top_p": 0.75, "nested": {"x": 1, "y": 2}}, turns=["q"])
    b = cache_key(turns=["q"], config={"nested": {"y": 2, "x": 1}, "top_p": 0.75, "top_k": 20}, kind="answer")
    assert a == b
    assert len(a) == 64 and int(a, 16) >= 0  # a sha256 hex digest


@pytest.mark.parametrize("other", [
    dict(kind="review", config={"top_k": 20}, turns=["q"]),
    dict(kind="answer", config={"top_k": 21}, turns=["q"]),
    dict(kind="answer", config={"top_k": 20}, turns=["q "]),
    dict(kind="answer", config={"top_k": 20}, turns=["q", "q2"]),
    dict(kind="answer", config={"top_k": 20}, turns=["q"], seed=1),
    dict(kind="answer", config={"top_k": "20"}, turns=["q"]),  # a string is not the number
    dict(kind="answer", config={}, turns=["q"]),
])
def test_cache_key_differs_for_different_inputs(other):
    assert cache_key(**other) != cache_key(kind="answer", config={"top_k": 20}, turns=["q"])


def test_cache_key_is_the_same_across_calls_and_for_unicode():
    parts = dict(text="如何提高时间管理能力？", path=Path("/x/y"))
    assert cache_key(**parts) == cache_key(**parts)
    assert cache_key(**parts) != cache_key(text="如何提高时间管理能力", path=Path("/x/y"))


# --------------------------------------------------------------------------------------------------
# read_jsonl


def test_read_jsonl_of_a_missing_file_is_empty(tmp_path):
    assert read_jsonl(tmp_path / "nope.jsonl") == []


@pytest.mark.parametrize("text", [
    '{"a": 1}\n\n{"a": 2}\n  \n',  # blank lines are skipped
    '{"a": 1}\n{"a": 2}\n{"a": 3, "text": "hal',  # a torn last line (a crash mid-append) is ignored
    '{"a": 1}\n{"a": 2}',  # a finished last line without its newline is kept
], ids=["blank-lines", "torn-last-line", "no-final-newline"])
def test_read_jsonl_reads_the_complete_records(tmp_path, text):
    path = tmp_path / "r.jsonl"
    path.write_text(text, encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_read_jsonl_ignores_a_line_torn_inside_a_multibyte_character(tmp_path):
    path = tmp_path / "r.jsonl"
    whole = json.dumps({"a": 2, "text": "日本語"}, ensure_ascii=False).encode("utf-8")
    torn = whole[: whole.index("本".encode()) + 1]  # ends one byte into a three-byte character
    path.write_bytes(b'{"a": 1}\n' + torn)
    assert read_jsonl(path) == [{"a": 1}]


def test_read_jsonl_rejects_a_broken_line_in_the_middle(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2"):
        read_jsonl(path)


# --------------------------------------------------------------------------------------------------
# JsonlAppender


def test_appender_creates_folders_and_writes_one_line_per_record(tmp_path):
    path = tmp_path / "deep" / "er" / "a.jsonl"
    appender = JsonlAppender(path)
    appender.append({"i": 1, "text": "héllo\nworld"})  # a newline inside a value stays escaped
    appender.append({"i": 2})
    appender.close()
    assert path.read_text(encoding="utf-8").count("\n") == 2
    assert read_jsonl(path) == [{"i": 1, "text": "héllo\nworld"}, {"i": 2}]


def test_appender_appends_to_existing_records(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"i": 0}\n', encoding="utf-8")
    appender = JsonlAppender(path)
    appender.append({"i": 1})
    appender.close()
    assert read_jsonl(path) == [{"i": 0}, {"i": 1}]


def test_appender_repairs_a_torn_tail_before_appending(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"i": 0}\n{"i": 1}\n{"i": 2, "tex', encoding="utf-8")
    appender = JsonlAppender(path)
    appender.append({"i": 3})
    appender.close()
    lines = lines_of(path)
    assert lines[-1] == b""  # ends on a newline
    assert [json.loads(line) for line in lines[:-1]] == [{"i": 0}, {"i": 1}, {"i": 3}]  # only complete lines


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('{"i": 0}\n{"i": 1}', '{"i": 0}\n{"i": 1}\n{"i": 2}\n'),  # a finished last line lacking its newline is kept
        ('{"i": 0, "te', '{"i": 2}\n'),  # a file that is only a torn line is cut to nothing
    ],
    ids=["finished-last-line-kept", "only-a-torn-line"],
)
def test_appender_repairs_the_tail_before_appending(tmp_path, before, after):
    path = tmp_path / "a.jsonl"
    path.write_text(before, encoding="utf-8")
    appender = JsonlAppender(path)
    appender.append({"i": 2})
    appender.close()
    assert path.read_text(encoding="utf-8") == after


def test_appender_repairs_a_tail_torn_inside_a_multibyte_character(tmp_path):
    path = tmp_path / "a.jsonl"
    whole = json.dumps({"i": 1, "text": "日本語"}, ensure_ascii=False).encode("utf-8")
    path.write_bytes(b'{"i": 0}\n' + whole[: whole.index("本".encode()) + 2])
    appender = JsonlAppender(path)
    appender.append({"i": 2})
    appender.close()
    assert path.read_bytes() == b'{"i": 0}\n{"i": 2}\n'


@pytest.mark.parametrize("torn", [True, False])
def test_appender_repair_keeps_earlier_lines_when_the_last_line_is_huge(tmp_path, torn):
    """A last line longer than the repair's read step (1 MiB) must not cost the records before it."""
    path = tmp_path / "a.jsonl"
    big = json.dumps({"i": 1, "text": "x" * (3 << 20)})
    path.write_text('{"i": 0}\n' + (big[:-10] if torn else big), encoding="utf-8")
    appender = JsonlAppender(path)
    appender.append({"i": 2})
    appender.close()
    assert [r["i"] for r in read_jsonl(path)] == ([0, 2] if torn else [0, 1, 2])
    assert path.read_bytes().endswith(b'\n{"i": 2}\n')


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "a.jsonl"
    appender = JsonlAppender(path)
    padding = "p" * 500  # long lines make a torn or interleaved write likely if writes were split
    barrier = threading.Barrier(8)

    def worker(thread: int):
        barrier.wait()
        for i in range(200):
            appender.append({"thread": thread, "i": i, "padding": padding})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    appender.close()

    raw = lines_of(path)
    assert raw[-1] == b""
    records = [json.loads(line) for line in raw[:-1]]  # every line parses on its own
    assert len(records) == 1600
    assert sorted((r["thread"], r["i"]) for r in records) == [(t, i) for t in range(8) for i in range(200)]
    for t in range(8):  # each thread's records are in its own order
        assert [r["i"] for r in records if r["thread"] == t] == list(range(200))


def test_close_is_idempotent_and_append_reopens(tmp_path):
    path = tmp_path / "a.jsonl"
    appender = JsonlAppender(path)
    appender.append({"i": 1})
    appender.close()
    appender.close()
    appender.append({"i": 2})
    appender.close()
    assert read_jsonl(path) == [{"i": 1}, {"i": 2}]


# --------------------------------------------------------------------------------------------------
# write_atomic


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "reports" / "rating.csv"
    write_atomic(path, "Model,Elo_Rating\nold,1000\n")
    write_atomic(path, "Model,Elo_Rating\nnew,1010\n")
    assert path.read_text(encoding="utf-8") == "Model,Elo_Rating\nnew,1010\n"
    assert [p.name for p in path.parent.iterdir()] == ["rating.csv"]


def test_file_lock_without_waiting_says_whether_it_got_the_lock(tmp_path):
    # flock locks belong to an open file: a second open conflicts as another process's would (xdist workers).
    path = tmp_path / "answers.jsonl.lock"
    with file_lock(path) as held:
        assert held is True
        with file_lock(path, wait=False) as second:
            assert second is False
    with file_lock(path, wait=False) as free:
        assert free is True


def test_file_lock_of_a_process_that_dies_is_free_again(tmp_path):
    # Another process holds the lock (an xdist worker generating answers), then is killed mid-work.
    path = tmp_path / "answers.jsonl.lock"
    script = ("import sys\nfrom pytest_arena.record_files import file_lock\n"
              "with file_lock(sys.argv[1]) as held:\n    print(held, flush=True)\n    sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        assert holder.stdout.readline().strip() == "True"
        with file_lock(path, wait=False) as busy:
            assert busy is False
    finally:
        holder.kill()
        holder.wait()
    with file_lock(path, wait=False) as free:
        assert free is True
    with file_lock(path) as waited:  # and one that waits gets it at once
        assert waited is True


def test_records_kept_by_a_check_are_read_once_and_only_while_the_file_is_unchanged(tmp_path):
    from pytest_arena.record_files import JsonlFollower

    path = tmp_path / "reviews.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}\n{"n": 3}', encoding="utf-8")  # the last line lacks its newline
    checked = read_jsonl(path, keep=True)
    assert [r["n"] for r in checked] == [1, 2, 3]
    follower = JsonlFollower(path)
    assert follower.read_new() == [{"n": 1}, {"n": 2}]  # handed over: complete lines only, as when read
    assert follower.offset == len('{"n": 1}\n{"n": 2}\n')
    assert read_jsonl(path) == checked  # nothing kept any more: read from the file, same records

    read_jsonl(path, keep=True)
    JsonlAppender(path).append({"n": 4})  # the file changed after the check: the kept records are stale
    assert [r["n"] for r in JsonlFollower(path).read_new()] == [1, 2, 3, 4]


# --------------------------------------------------------------------------------------------------
# Files that are not ours: refused, never cut


@pytest.mark.parametrize("text, reason", [
    (b"", None),
    (b'{"a": 1}\n{"a": 2}\n', None),
    (b'{"a": 1}\n{"a": 2', None),  # a torn record of ours
    (b'{"a": 1}\n{', None),  # ... cut after its first byte (a full disk)
    (b'{"a": 1}\n{"a": 2}', None),  # a finished record without its newline
    (b'\n\n{"a": 1}\n', None),  # blank lines first
    (b"remember: buy milk", "its last line is neither a JSON object nor a record torn by a crash"),
    (b"remember: buy milk\n", "line 1 is not JSON"),
    (b"model,elo\na,1000\n", "line 1 is not JSON"),
    (b"[1, 2]\n", "line 1 is an array, not a JSON object"),
    (b'\n"text"\n', "line 2 is a string, not a JSON object"),
    (b'{"a": 1}\n42', "its last line is neither a JSON object nor a record torn by a crash"),
], ids=["empty", "records", "torn-record", "torn-after-one-byte", "no-final-newline", "blank-first",
        "text-no-newline", "text", "csv", "array", "string", "number-last"])
def test_foreign_content_says_why_a_file_is_not_jsonl_of_records(tmp_path, text, reason):
    path = tmp_path / "f"
    path.write_bytes(text)
    assert foreign_content(path) == reason
    assert foreign_content(tmp_path / "missing") is None


def test_foreign_content_reads_a_huge_file_by_its_ends(tmp_path):
    path = tmp_path / "big.jsonl"
    record = json.dumps({"text": "x" * (2 << 20)})  # longer than the 1 MiB read step
    path.write_text(record + "\n" + record + "\n" + record[:-5], encoding="utf-8")
    assert foreign_content(path) is None
    path.write_text("x" * (2 << 20) + "\n" + record + "\n", encoding="utf-8")
    assert foreign_content(path) == "line 1 is not a JSON object"


@pytest.mark.parametrize("text", [b"remember: buy milk", b'{"i": 0}\n[1, 2', b"a,b\n1,2", b'{"i": 0}\n{ note'])
def test_appender_never_cuts_a_tail_that_is_not_a_record_of_ours(tmp_path, text):
    path = tmp_path / "notes.txt"
    path.write_bytes(text)
    appender = JsonlAppender(path)
    with pytest.raises(ArenaConfigError, match="not a JSONL file of records"):
        appender.append({"i": 1})
    appender.close()
    assert path.read_bytes() == text


def test_appender_cuts_a_record_torn_after_its_first_byte(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"i": 0}\n{')
    appender = JsonlAppender(path)
    appender.append({"i": 1})
    appender.close()
    assert path.read_bytes() == b'{"i": 0}\n{"i": 1}\n'


def test_read_jsonl_refuses_a_line_that_is_json_but_not_a_record(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ArenaConfigError, match=r"line 2: expected a JSON object \(one record a line\), got an array"):
        read_jsonl(path)


# --------------------------------------------------------------------------------------------------
# Lines end at "\n" only: U+2028 and U+0085 are characters of a JSON string


ODD_BREAKS = "one\u2028two\u0085three\u2029four\x1cfive"


def test_jsonl_with_unicode_line_separators_in_strings_is_read_whole(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"i": i, "text": ODD_BREAKS}, ensure_ascii=False) + "\n" for i in (1, 2)),
                    encoding="utf-8")
    assert "\u2028" in path.read_text(encoding="utf-8")  # raw, not escaped
    assert read_jsonl(path) == [{"i": 1, "text": ODD_BREAKS}, {"i": 2, "text": ODD_BREAKS}]
    assert JsonlFollower(path).read_new() == [{"i": 1, "text": ODD_BREAKS}, {"i": 2, "text": ODD_BREAKS}]
    assert foreign_content(path) is None


def test_questions_with_unicode_line_separators_are_read_whole(tmp_path):
    path = tmp_path / "q.jsonl"
    lines = [{"question_id": 1, "text": ODD_BREAKS}, {"question_id": 2, "turns": [ODD_BREAKS, "and\u2028then?"]}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    questions = load_questions(path)
    assert [q.turns for q in questions] == [(ODD_BREAKS,), (ODD_BREAKS, "and\u2028then?")]


def test_prompt_templates_with_unicode_line_separators_are_read_whole(tmp_path):
    source = Path(DEFAULT_TEMPLATES).read_text(encoding="utf-8").split("\n")
    record = json.loads(next(line for line in source if line.strip()))
    record["system_prompt"] = "Judge well.\u2028Be fair.\u0085"
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    [template] = load_templates(path)
    assert template.system_prompt == "Judge well.\u2028Be fair.\u0085"


def test_an_unreadable_question_file_is_a_usage_error():
    # Root reads any file, but not /proc/self/mem from its start: the read fails with EIO.
    with pytest.raises(ArenaConfigError, match=r"cannot read the question file \(Input/output error\)"):
        load_questions("/proc/self/mem")


# --------------------------------------------------------------------------------------------------
# Text that UTF-8 cannot encode: a lone surrogate is valid JSON ("\ud800"), and json.loads also passes the
# raw bytes ED A0 80 of one; refused with its line when read, never a UnicodeEncodeError when written


LONE = [
    pytest.param(b'{"question_id": 2, "answer": "x\\ud800y"}', "'\\ud800' at answer", id="escaped-high"),
    pytest.param(b'{"question_id": 2, "choices": [{"turns": ["ok", "\\uDC00"]}]}', "'\\udc00' at choices[0].turns[1]",
                 id="escaped-low-nested"),
    pytest.param(b'{"question_id": 2, "answer": "\xed\xa0\x80"}', "'\\ud800' at answer", id="raw-bytes"),
    pytest.param(b'{"question_id": 2, "meta": {"\\ud800": 1}}', "'\\ud800' in a key of meta", id="in-a-key"),
]


@pytest.mark.parametrize("line, spot", LONE)
def test_read_jsonl_refuses_a_lone_surrogate_naming_file_line_and_place(tmp_path, line, spot):
    path = tmp_path / "answers.jsonl"
    path.write_bytes(b'{"question_id": 1, "answer": "fine \\ud83d\\ude00"}\n' + line + b"\n")
    with pytest.raises(ArenaDataError) as caught:
        read_jsonl(path)
    assert str(caught.value) == (f"{path}: line 2: expected text that UTF-8 can encode, got a lone surrogate {spot} "
                                 "(valid JSON, but no file or judge request can carry it)")


def test_a_lone_surrogate_on_a_last_line_without_newline_is_refused_too(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_bytes(b'{"question_id": 1, "answer": "a"}\n\n{"question_id": 2, "answer": "\\udfff"}')
    with pytest.raises(ArenaDataError, match=r"answers\.jsonl: line 3: expected text that UTF-8 can encode"):
        read_jsonl(path)


def test_surrogate_pairs_and_escaped_backslashes_are_not_lone_surrogates(tmp_path):
    path = tmp_path / "answers.jsonl"
    records = [{"answer": "emoji 😀 𝄞"}, {"answer": "a literal \\ud800 in text"}, {"answer": "한국어 \ud7a3"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records)
                    + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert read_jsonl(path) == records + records


def test_questions_and_templates_with_a_lone_surrogate_are_refused_with_their_line(tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question_id": 1, "text": "ok"}\n{"question_id": 2, "text": "bad \\ud800"}\n')
    with pytest.raises(ArenaDataError, match=r"questions\.jsonl: line 2: .*lone surrogate '\\ud800' at text"):
        load_questions(questions)
    template = json.loads(Path(DEFAULT_TEMPLATES).read_text(encoding="utf-8").split("\n")[0])
    templates = tmp_path / "templates.jsonl"
    templates.write_text(json.dumps(template) + "\n" + json.dumps(template | {"system_prompt": "\udc80"}) + "\n")
    with pytest.raises(ArenaDataError, match=r"templates\.jsonl: line 2: .*lone surrogate '\\udc80' at system_prompt"):
        load_templates(templates)


def test_the_follower_takes_no_record_that_utf8_cannot_encode(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_bytes(b'{"win": "model_a"}\n{"win": "\\ud800"}\n{"win": "tie"}\n')
    assert JsonlFollower(path).read_new() == [{"win": "model_a"}, {"win": "tie"}]


def test_record_lines_name_the_lines_of_the_records_read(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_bytes(b'\n{"a": 1}\n  \n{"a": 2}\n{"a": 3}')
    assert len(read_jsonl(path)) == 3
    assert record_lines(path) == ["line 2", "line 4", "line 5"]
