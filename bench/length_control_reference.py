"""Reference numbers for the length-controlled win rate: the real ``alpaca_eval`` package on a small set of annotations.

    python -m venv /tmp/ae && /tmp/ae/bin/pip install alpaca-eval==0.6.6   # NOT the project's venv
    /tmp/ae/bin/python bench/length_control_reference.py            # print the package's figures
    /tmp/ae/bin/python bench/length_control_reference.py --write    # (re)generate the data first (seeded)

Source: tatsu-lab/alpaca_eval 0.6.6 (PyPI), ``alpaca_eval.metrics.glm_winrate.get_length_controlled_winrate``,
called unmodified on ``tests/data/length_control_annotations.json`` (annotations in its format:
``instruction``, ``output_1`` / ``generator_1`` = the baseline, ``output_2`` / ``generator_2`` = the model,
``preference`` 1 = baseline preferred, 2 = model preferred, 1.5 = tie; one call per model, as the package
requires one ``generator_2``), with two of its GLMs:

* ``length_controlled_minimal``: ``np.tanh(std_delta_len) + not_gamed_baseline - 1`` -- the formula without
  the difficulty term, the package's own form for question sets without a difficulty;
* ``length_controlled_noreg``: ``np.tanh(std_delta_len) + instruction_difficulty + not_gamed_baseline - 1``.

The package reads each question's ``instruction_difficulty`` from ``df_gamed.csv`` on the Hugging Face hub
(position i of the annotations is question i). No download happens here: the file is placed in a private
hub cache under /tmp, built from ``tests/data/length_control_difficulty.csv``, and ``HF_HUB_OFFLINE=1`` makes
``hf_hub_download`` return it. Neither GLM uses the rest of that file (``regularize_to_baseline_lambda``
is None for both). Its default GLM, ``length_controlled_v1``, also fits AlpacaEval's own recorded
annotations of a gamed baseline, which exist only for its 805 instructions, so it is not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
ANNOTATIONS = ROOT / "tests" / "data" / "length_control_annotations.json"
DIFFICULTY = ROOT / "tests" / "data" / "length_control_difficulty.csv"
SEED = 20261205
BASELINE = "baseline-model"
# model -> (quality in logits, mean log length ratio to the baseline's answer)
MODELS = {"verbose-model": (0.0, 0.6), "better-model": (0.7, -0.1)}
WORDS = "a short answer can still say what the user needs with clear steps and one good example of use".split()


def _text(rng, chars: int) -> str:
    out = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(str(rng.choice(WORDS)))
    return " ".join(out)[:chars]


def write_data(questions: int = 80) -> None:
    rng = np.random.default_rng(SEED)
    difficulty = rng.normal(0.0, 0.8, questions)
    base_len = rng.integers(120, 600, questions)
    base = [_text(rng, int(n)) for n in base_len]
    annotations = []
    for model, (quality, log_ratio) in MODELS.items():
        for i in range(questions):
            length = int(base_len[i] * np.exp(rng.normal(log_ratio, 0.5)))
            latent = quality + 1.2 * np.tanh((length - base_len[i]) / 250.0) + difficulty[i]
            u = rng.random()
            p = 1.0 / (1.0 + np.exp(-latent))
            preference = 2.0 if u < p - 0.04 else 1.5 if u < p + 0.04 else 1.0
            annotations.append({"instruction": f"question {i}", "output_1": base[i], "generator_1": BASELINE,
                                "output_2": _text(rng, length), "generator_2": model,
                                "annotator": "reference_judge", "preference": preference})
    ANNOTATIONS.parent.mkdir(parents=True, exist_ok=True)
    ANNOTATIONS.write_text(json.dumps(annotations, indent=0) + "\n")
    # the "precomputed" difficulty a leaderboard would ship: the true one, measured with noise
    noisy = difficulty + rng.normal(0.0, 0.2, questions)
    pd.DataFrame({"index": range(questions), "instruction_difficulty": noisy.round(6)}).to_csv(DIFFICULTY, index=False)


def _offline_hub(difficulty: pd.DataFrame) -> Path:
    """A hub cache holding only datasets tatsu-lab/alpaca_eval / df_gamed.csv, built from our difficulty."""
    cache = Path(tempfile.mkdtemp(prefix="ae_hub_"))
    repo = cache / "datasets--tatsu-lab--alpaca_eval"
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    gamed = difficulty.assign(model="none", preference=np.nan, not_gamed_baseline=False)
    gamed.to_csv(snapshot / "df_gamed.csv", index=False)
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="regenerate the data files first")
    args = parser.parse_args()
    if args.write:
        write_data()
    difficulty = pd.read_csv(DIFFICULTY)
    os.environ["HF_HUB_CACHE"] = str(_offline_hub(difficulty))
    os.environ["HF_HUB_OFFLINE"] = "1"
    import alpaca_eval
    from alpaca_eval.metrics.glm_winrate import get_length_controlled_winrate

    print(f"alpaca_eval {alpaca_eval.__version__}, Python {sys.version.split()[0]}")
    annotations = pd.DataFrame(json.loads(ANNOTATIONS.read_text()))
    weights_dir = Path(tempfile.mkdtemp(prefix="ae_weights_"))
    for model in MODELS:
        rows = annotations[annotations["generator_2"] == model].reset_index(drop=True)
        print(f"\n{model} vs {BASELINE}: {len(rows)} annotations")
        for glm in ("length_controlled_minimal", "length_controlled_noreg"):
            metrics = get_length_controlled_winrate(rows.copy(), glm_name=glm, save_weights_dir=weights_dir,
                                                    is_warn_extreme_changes=False)
            fitted = pd.read_csv(weights_dir / glm / f"baseline_{BASELINE}.csv", index_col=0).loc[model]
            coefs = ", ".join(f"{k} {v:+.4f}" for k, v in fitted.items())
            print(f"  {glm}: LC {metrics['length_controlled_winrate']:.3f}  raw win_rate {metrics['win_rate']:.3f}"
                  f"  ({coefs})")


if __name__ == "__main__":
    main()
