"""The files a run reads and writes, checked before anything runs: nothing the user owns is altered.

A run names its files in many places (the config's keys, defaults under ``--arena-results``,
``--arena-questions``, ``--arena-baseline``), so two of them can be one file: a report written over the
question file, two models appending to one answers file, reviews mixed into answers. Each such pair is
refused, as is an output that cannot be written (a read-only filesystem, a parent that is a file, a name
too long for the filesystem) and an existing output that is not a JSONL file of ours (someone's notes):
all of them before any model loads or any judge call is paid, so a run never fails after the work.

``first_problem`` returns the first of these as an ``ArenaConfigError`` (None: all is well); it only
looks, except for a probe file it creates and removes at once in each folder the run will write to.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .errors import ArenaConfigError
from .file_names import digests_file, files_beside, files_beside_reviews, verdicts_file
from .evalscope.stages import rating_asked
from .record_files import foreign_content

if TYPE_CHECKING:  # only a hint: the config is read before its paths are checked
    from .config import ArenaConfig

ANY_MODEL = "*"  # target_answers: the answers of whichever model wrote the file


@dataclass(frozen=True)
class Role:
    """One use of a path by the run."""

    file: Path  # the file the error names first: the config, or the path a command-line option gave
    key: str  # the key (or option) that names the path
    label: str  # how another role's error refers to this one
    paths: tuple[Path, ...]  # the path, or for the report every file written next to it
    writes: bool = False
    appends: bool = False  # a JSONL file of ours that records are appended to (answers, reviews)
    answers_of: str | None = None  # answer files: whose answers (one file may serve two answer roles)
    # An input its own reader checks (rating only's review file: a wrong one is "nothing to rate"):
    # it may be another input file, never an output.
    reader_checks: bool = False


def run_roles(config: "ArenaConfig", *, question_files: Iterable[Path] = (), baseline_report: Path | None = None,
              update_baseline: bool = False, writers: Iterable[str] | None = None,
              baseline: str | None = None) -> list[Role]:
    """Every path the run reads or writes, inputs first. ``writers``: the models that may generate
    (default: every enabled one); ``baseline``: the pairwise_baseline model."""
    cfg = config.path
    review, rating = config.review, config.rating
    writers = {n for n, spec in config.models.items() if spec.enable} if writers is None else set(writers)
    roles = [Role(cfg, "--arena-config", "the config file", (cfg,))]
    if config.question_file is not None and not question_files:
        roles.append(Role(cfg, "question_file", "question_file", (config.question_file,)))
    for path in question_files:
        roles.append(Role(Path(path), "--arena-questions", f"the question file {path}", (Path(path),)))
    roles.append(Role(cfg, "reviews_gen.prompt_file", "reviews_gen.prompt_file", (review.prompt_file,)))
    if review.reference_file is not None:
        roles.append(Role(cfg, "reviews_gen.reference_file", "reviews_gen.reference_file", (review.reference_file,)))
    if review.baseline_file is not None:
        roles.append(Role(cfg, "reviews_gen.baseline_file", "reviews_gen.baseline_file", (review.baseline_file,),
                          answers_of=baseline or ANY_MODEL))
    for i, path in enumerate(review.target_answers or ()):
        roles.append(Role(cfg, f"reviews_gen.target_answers[{i}]", f"reviews_gen.target_answers[{i}]", (path,),
                          answers_of=ANY_MODEL))
    if baseline_report is not None:
        baseline_report = Path(baseline_report)  # and its per-battle verdicts (flips.py), written with it
        verdicts = verdicts_file(baseline_report)
        roles.append(Role(baseline_report, "--arena-baseline", "the --arena-baseline report",
                          (baseline_report, verdicts), writes=update_baseline))
    for name, spec in config.models.items():
        generates = name in writers
        roles.append(Role(cfg, f"answers_gen.{name}.output_file", f"the output_file of model {name!r}",
                          (spec.output_file,), writes=generates, appends=generates, answers_of=name))
        if generates and spec.api is None:  # the checkpoint digests kept beside its answers (fingerprint.py)
            roles.append(Role(cfg, f"answers_gen.{name}.output_file",
                              f"the checkpoint digests kept beside the output_file of model {name!r}",
                              (digests_file(spec.output_file),), writes=True))
    if review.enable or rating_asked(config):  # (rating only: the review file is read, never written)
        # (with the cached-call counts --collect-only keeps beside it: cached_count.py, and the judge calls
        # xdist workers count under a budget: budget.py)
        roles.append(Role(cfg, "reviews_gen.review_file", "reviews_gen.review_file",
                          (review.review_file, *files_beside_reviews(review.review_file,
                                                                  [j.model for j in review.panel])),
                          writes=review.enable, appends=review.enable, reader_checks=not review.enable))
        if rating.enable and rating.report_file is not None:
            roles.append(Role(cfg, "rating_gen.report_file", "rating_gen.report_file (or a file written beside it)",
                              files_beside(rating.report_file, rating.metrics), writes=True))
    return roles


def first_problem(roles: list[Role]) -> ArenaConfigError | None:
    """The first path problem of a run: two roles on one file, then an output that cannot be written
    or is not ours to append to."""
    return _first_collision(roles) or _first_unwritable(roles)


# -------------------------------------------------------------------------------------------------
# Two roles, one file


def _first_collision(roles: list[Role]) -> ArenaConfigError | None:
    seen: list[tuple[Role, set]] = []
    for role in roles:
        for path in role.paths:
            identity = _identity(path)
            for earlier, earlier_identity in seen:
                if earlier is not role and identity & earlier_identity and not _may_share(earlier, role):
                    return _collision(earlier, role, path)
            seen.append((role, identity))
    return None


def _identity(path: Path) -> set:
    """What makes two paths one file: the same real path (symlinks followed), or, for a file that
    exists, the same inode (a hard link)."""
    found: set = {os.path.normcase(os.path.realpath(path))}
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return found
    found.add((info.st_dev, info.st_ino))
    return found


def _may_share(a: Role, b: Role) -> bool:
    """One file in one role: a model's answers named again by target_answers (or baseline_file)."""
    if (a.reader_checks and not b.writes) or (b.reader_checks and not a.writes):
        return True
    if a.answers_of is None or b.answers_of is None:
        return False
    return ANY_MODEL in (a.answers_of, b.answers_of) or a.answers_of == b.answers_of


def _collision(earlier: Role, role: Role, path: Path) -> ArenaConfigError:
    if role.answers_of and earlier.answers_of:
        why = "each model needs its own answers file (set output_file)"
    elif role.writes and earlier.writes:
        why = "two outputs would write the same file; give each its own path"
    elif role.writes or earlier.writes:
        why = "an output must not be written over an input; choose another path"
    else:
        why = "expected two different files"
    return ArenaConfigError(role.file, role.key, f"{path} is also {earlier.label}: {why}")


# -------------------------------------------------------------------------------------------------
# Outputs that can be written, and are ours


def _first_unwritable(roles: list[Role]) -> ArenaConfigError | None:
    probed: dict[Path, str | None] = {}
    for role in roles:
        if not role.writes:
            continue
        for path in role.paths:
            problem = _unwritable(Path(path), probed)
            if problem:
                return ArenaConfigError(role.file, role.key, f"cannot write {path}: {problem}")
        if role.appends:
            reason = foreign_content(role.paths[0])
            if reason:
                return ArenaConfigError(role.file, role.key,
                                        f"{role.paths[0]} is not a JSONL file of records ({reason}): it is not ours "
                                        "to append to and is left as it is; name another file or move it")
    return None


def _unwritable(path: Path, probed: dict[Path, str | None]) -> str | None:
    """Why ``path`` cannot be created or rewritten (None: it can), without creating it or its folders."""
    existing, missing = _nearest_existing(path)
    if existing is None:
        return "no part of the path can be reached"
    info = os.stat(existing)
    if missing and not stat.S_ISDIR(info.st_mode):
        return f"{existing} is a file, not a folder"
    if not missing:
        if stat.S_ISDIR(info.st_mode):
            return "expected a file, got a folder"
        if not stat.S_ISREG(info.st_mode):
            return "expected a regular file"
        if not os.access(path, os.W_OK):
            return "the file is read-only"
        folder = existing.parent
    else:
        folder = existing
        too_long = _name_too_long(folder, path, missing)
        if too_long:
            return too_long
    if folder not in probed:
        probed[folder] = _probe(folder)
    return probed[folder]


def _nearest_existing(path: Path) -> tuple[Path | None, list[str]]:
    """The longest existing start of ``path``, and the names after it that do not exist yet."""
    missing: list[str] = []
    current = path
    while True:
        try:
            os.stat(current)
            return current, missing
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG) or current.parent == current:
                return None, missing
        missing.insert(0, current.name)
        current = current.parent


def _name_too_long(folder: Path, path: Path, missing: list[str]) -> str | None:
    name_max = _pathconf(folder, "PC_NAME_MAX", 255)
    for name in missing:
        size = len(os.fsencode(name))
        if size > name_max:
            return f"file name too long ({size} bytes; this filesystem allows {name_max})"
    path_max = _pathconf(folder, "PC_PATH_MAX", 4096)
    if len(os.fsencode(str(path))) >= path_max:
        return f"path too long (this filesystem allows {path_max - 1} bytes)"
    return None


def _pathconf(folder: Path, name: str, fallback: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError, AttributeError):  # not known on this platform
        return fallback


def _probe(folder: Path) -> str | None:
    """Create and remove a file in ``folder``: the one sure test (a read-only mount, /proc, a full
    quota) whatever the permission bits say, and root passes every permission check."""
    probe = folder / f".arena-write-check-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return f"no file can be created in {folder} ({exc.strerror})"
    os.close(fd)
    os.unlink(probe)
    return None
