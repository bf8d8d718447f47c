"""Which of EvalScope's stages a config runs, and what the summary says about it.

EvalScope switches each stage with its own flag; so does this plugin:

====================  ===================  =======================================================
reviews_gen.enable    rating_gen.enable    the run
====================  ===================  =======================================================
true                  true                 the whole arena: answers, judging, ratings, report
true                  false                reviews only: answers and judging; no ratings, no report
false                 true                 rating only: the reviews already in the review file are
                                           rated; nothing is generated, no judge is called
false                 false                answers only: answers generated; no judging, no report
====================  ===================  =======================================================

With reviews off and rating on, a review file without reviews leaves the run to its answers when a model
generates (answers only, and the summary says there was nothing to rate); when nothing generates either,
it is an error before anything runs (``reviews.rating_only``), never a quiet green run.

Imports nothing of the package at run time: ``paths`` asks ``rating_asked`` while the config is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import ArenaConfig


def rating_asked(config: ArenaConfig) -> bool:
    """Reviews off, rating on: EvalScope's rating stage, over the reviews already in the review file."""
    return not config.review.enable and config.rating.enable


def stage_line(config: ArenaConfig, rated_file: bool) -> str | None:
    """What the run did when it is not the whole arena, for the terminal summary (None: the whole arena).
    ``rated_file``: the run rated the review file (rating only)."""
    review_file = config.review.review_file
    if rated_file:
        generating = [name for name, spec in config.models.items() if spec.enable]
        skipped = (f"; {', '.join(generating)} generated nothing (rating only reads no answer: rating_gen.enable: "
                   "false generates answers)") if generating else ""
        return (f"rating only: the reviews in {review_file} were rated (reviews_gen.enable is false); "
                f"no judge was called{skipped}")
    if not config.review.enable:
        if rating_asked(config):
            return (f"answers only: reviews_gen.enable is false, so nothing was judged, and {review_file} holds "
                    "no review to rate (rating_gen.enable: true rates the reviews already there), so no report")
        return ("answers only: reviews_gen.enable is false and rating_gen.enable is false, so nothing was judged "
                "and no report written")
    if not config.rating.enable:
        return (f"reviews only: rating_gen.enable is false, so no ratings and no report; the reviews are in "
                f"{review_file}")
    return None
