"""EvalScope's arena, as its users run it: its three stages, its review files and its rating tables.

EvalScope (``run_arena.py -c cfg_arena.yaml``) runs ``answers_gen``, ``reviews_gen`` and ``rating_gen``
one after another, each switched on by its own ``enable`` flag. The rooms:

- ``stages``: which stages a config runs, and the line the summary says about it;
- ``reviews``: EvalScope review files (``model_a``, ``model_b``, ``win`` or ``win_1``/``win_2``, hub
  ids as names) read as rating input, and the rating-only run built from a review file;
- ``tables``: ``rating_gen.metrics``' tables (``elo``, ``pairwise``, ``score``) as EvalScope computes
  them, written beside the report.

The names of the tables' files are in ``file_names`` (``metric_file``), with every file written beside the report.
"""

from __future__ import annotations
