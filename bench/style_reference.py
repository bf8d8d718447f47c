"""Reference numbers for style-controlled Bradley-Terry: arena-hard-auto v2's own method, reimplemented here.

    python bench/style_reference.py            # print the reference fit of tests/data/style_control_reference.json
    python bench/style_reference.py --write    # (re)generate that file first (seeded: the same file every time)

Source: lmarena/arena-hard-auto (not on PyPI), as read on GitHub:

* ``utils/add_markdown_info.py``: ``count_markdown_elements`` (headers h1-h6, ordered/unordered list items,
  ``**``/``__`` bold, by its regexes), ``remove_pattern`` with the pattern ``"```([^`]*)```"`` (it deletes
  each code block's content wherever it occurs), ``add_markdown_meta`` (``token_len`` of the whole
  answer);
* ``show_result.py``: ``load_judgments`` (label -> score, a strong verdict repeated ``weight=3`` times;
  game 2 is read from the model's side, game 1 from the baseline's), ``print_leaderboard_with_style_
  features`` (length ``(a - b) / (a + b)``; markdown as density per token, ``(a - b) / (a + b + 1)``;
  standardised with the mean and ``torch.std``; model indicators by ``utils/math_utils.py``'s
  ``one_hot_encode``: +1 for the model, -1 for the baseline);
* ``utils/math_utils.py``: ``fit_pairwise_model`` with ``loss_type="bt"`` -- ``bt_loss`` (binary cross
  entropy with the 0.5 label for a tie, summed, no prior), ``BTModel`` (every coefficient starts at 0.5),
  ``torch.optim.LBFGS(lr=1.0, max_iter=50, tolerance_grad=1e-9, tolerance_change=1e-9)``, float32.

What is not arena-hard's here: token counts come from a small deterministic word/punctuation splitter
(``tokens`` below) instead of tiktoken's gpt-4o encoding, which would need a download; the project's test
uses the same splitter, so both sides count the same tokens. And arena-hard's length-only path slices
``all_features[:, :1]`` -- the first *model* column, not the length column (its ``markdown``-only path
drops the first model column likewise); the intended selection, the model columns plus the length
column, is what runs here for ``control="length"``. The bootstrap is not run: the test pins the full-data
fit (``fit_pairwise_model`` without ``indices``), which is what the bootstrap resamples around.

The fit is the full-data LBFGS fit as arena-hard runs it; a second fit in float64 with 1000 iterations
shows how far its 50 float32 iterations are from the optimum. Coefficients print as logits relative to
the baseline; ``Elo`` is ``1000 + logit * 400 / ln 10`` (the baseline at 1000).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "style_control_reference.json"
SEED = 20261204
BASELINE = "base-model"
WORDS = ("the model answer uses simple words to explain each step of the method and why it works in "
         "practice with data from tests and notes on edge cases where the result may differ").split()


def tokens(text: str) -> int:
    """Stand-in for tiktoken: words and single punctuation marks."""
    return len(re.findall(r"\w+|[^\w\s]", text))


# --------------------------------------------------------------------------------------------------
# A small, fixed battle set (written once with --write; the committed file is what the test reads)


def _sentence(rng, n):
    return " ".join(rng.choice(WORDS, n)).capitalize() + "."


def _answer(rng, profile):
    parts = []
    for _ in range(max(1, rng.poisson(profile["paragraphs"]))):
        if rng.random() < profile["header"]:
            parts.append(("#" * int(rng.integers(1, 4))) + " " + _sentence(rng, 3)[:-1])
        text = " ".join(_sentence(rng, int(rng.integers(5, 14))) for _ in range(int(rng.integers(1, 3))))
        if rng.random() < profile["bold"]:
            words = text.split()
            k = int(rng.integers(0, len(words)))
            words[k] = f"**{words[k]}**" if rng.random() < 0.7 else f"__{words[k]}__"
            text = " ".join(words)
        parts.append(text)
        if rng.random() < profile["lists"]:
            ordered = rng.random() < 0.5
            items = [f"{i + 1}. " if ordered else rng.choice(["- ", "* ", "+ "]) for i in range(int(rng.integers(2, 5)))]
            parts.append("\n".join(marker + _sentence(rng, int(rng.integers(3, 8))) for marker in items))
        if rng.random() < profile["code"]:
            # code whose lines look like markdown: it must not count
            parts.append(f"```python\n# step {int(rng.integers(100))}\nvalues = [1, 2]\n- not a list\n```")
    return "\n\n".join(parts)


PROFILES = {
    BASELINE: dict(paragraphs=2, header=0.1, bold=0.2, lists=0.2, code=0.2, quality=0.0),
    "padded-model": dict(paragraphs=5, header=0.2, bold=0.3, lists=0.5, code=0.2, quality=0.0),
    "markdown-model": dict(paragraphs=2, header=0.8, bold=0.9, lists=0.7, code=0.1, quality=0.2),
    "strong-model": dict(paragraphs=2, header=0.1, bold=0.2, lists=0.2, code=0.3, quality=0.9),
    "plain-model": dict(paragraphs=1, header=0.0, bold=0.0, lists=0.0, code=0.1, quality=-0.3),
}


def _label(x, model_first):
    """The verdict for a latent preference x of the model, written as the judge would for that order."""
    sign = ">>" if x > 2.0 else ">" if x > 0.4 else "=" if x > -0.4 else "<" if x > -2.0 else "<<"
    model, base = ("A", "B") if model_first else ("B", "A")
    if sign == "=":
        return f"{model}={base}" if model_first else "A=B"
    if sign.startswith(">"):
        return f"{model}{sign}{base}"
    return f"{base}{'>' * len(sign)}{model}"


def write_data(path: Path, questions: int = 30) -> None:
    rng = np.random.default_rng(SEED)
    uids = [f"q{k:02d}" for k in range(questions)]
    answers = {m: {u: _answer(rng, p) for u in uids} for m, p in PROFILES.items()}
    judgments = []
    for model, profile in PROFILES.items():
        if model == BASELINE:
            continue
        for u in uids:
            a, b = answers[model][u], answers[BASELINE][u]
            ta, tb = tokens(a), tokens(b)
            lists = len(re.findall(r"^\s*[-*+\d]", a, re.M)) / ta - len(re.findall(r"^\s*[-*+\d]", b, re.M)) / tb
            latent = profile["quality"] + 1.0 * (ta - tb) / (ta + tb) + 8.0 * lists
            games = [{"score": _label(latent + rng.logistic() - 0.3, model_first=False)},
                     {"score": _label(latent + rng.logistic() + 0.3, model_first=True)}]
            judgments.append({"uid": u, "model": model, "category": "hard_prompt", "games": games})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"source": "bench/style_reference.py --write", "seed": SEED, "baseline": BASELINE,
                                "answers": answers, "judgments": judgments}, indent=1) + "\n")


# --------------------------------------------------------------------------------------------------
# arena-hard-auto's method


def markdown_meta(answer: str) -> dict:
    """add_markdown_info.py: remove_pattern(answer, "```([^`]*)```") then count_markdown_elements."""
    text = answer
    for block in re.compile("```([^`]*)```").findall(answer):
        text = text.replace(block, "")
    return {
        "token_len": tokens(answer),
        "header_count": {f"h{k}": len(re.findall(rf"^#{{{k}}}\s", text, re.MULTILINE)) for k in range(1, 7)},
        "list_count": {"ordered": len(re.findall(r"^\s*\d+\.\s", text, re.MULTILINE)),
                       "unordered": len(re.findall(r"^\s*[-*+]\s", text, re.MULTILINE))},
        "bold_count": {"**": len(re.findall(r"\*\*[^*\n]+\*\*", text)), "__": len(re.findall(r"__[^_\n]+__", text))},
    }


LABEL_TO_SCORE = {"A>B": [1], "A>>B": [1] * 3, "A=B": [0.5], "A<<B": [0] * 3, "A<B": [0], "B>A": [0],
                  "B>>A": [0] * 3, "B=A": [0.5], "B<<A": [1] * 3, "B<A": [1]}


def load_battles(judgments: list[dict]) -> pd.DataFrame:
    """show_result.py load_judgments: one row per score, from the model's side."""
    rows = []
    for j in judgments:
        g0, g1 = j["games"]
        scores = LABEL_TO_SCORE[g1["score"]] + [1 - s for s in LABEL_TO_SCORE[g0["score"]]]
        rows += [{"uid": j["uid"], "model": j["model"], "scores": s} for s in scores]
    return pd.DataFrame(rows)


def style_features(battles: pd.DataFrame, metadata: dict, baseline: str) -> torch.Tensor:
    """print_leaderboard_with_style_features, up to normalized_feature_tensor."""
    def vector(meta):
        return [v if isinstance(v, int) else sum(v.values()) for v in meta.values()]

    model = torch.tensor([vector(metadata[m][u]) for m, u in zip(battles.model, battles.uid)], dtype=torch.float32)
    base = torch.tensor([vector(metadata[baseline][u]) for u in battles.uid], dtype=torch.float32)
    final = torch.zeros_like(model)
    final[:, 0] = (model[:, 0] - base[:, 0]) / (model[:, 0] + base[:, 0])
    model_density = model[:, 1:] / model[:, :1]
    base_density = base[:, 1:] / base[:, :1]
    final[:, 1:] = (model_density - base_density) / (model_density + base_density + 1)
    return (final - torch.mean(final, axis=0)) / torch.std(final, axis=0)


def one_hot_encode(items: list[str], baseline: str):
    unique = sorted(set(items + [baseline]))
    index = {item: k for k, item in enumerate(unique)}
    matrix = []
    for item in items:
        row = [0] * len(unique)
        row[index[item]] = 1
        row[index[baseline]] = -1
        matrix.append(row)
    return torch.tensor(matrix, dtype=torch.float32), unique


def fit_pairwise_model(features, outcomes, max_epochs=50, dtype=torch.float32):
    """math_utils.py fit_pairwise_model(loss_type="bt") on the full data."""
    features, outcomes = features.to(dtype), outcomes.to(dtype)
    logits = torch.nn.Parameter(torch.full((features.shape[1],), 0.5, dtype=dtype))
    optimizer = torch.optim.LBFGS([logits], lr=1.0, max_iter=max_epochs, tolerance_grad=1e-9, tolerance_change=1e-9)

    def closure():
        optimizer.zero_grad()
        probs = torch.sigmoid(features @ logits)
        loss = -(torch.log(probs) * outcomes + torch.log(1.0 - probs) * (1.0 - outcomes)).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return logits.detach().to(torch.float64)


def reference(data: dict, control: str, max_epochs=50, dtype=torch.float32) -> dict:
    baseline = data["baseline"]
    metadata = {m: {u: markdown_meta(text) for u, text in by_uid.items()} for m, by_uid in data["answers"].items()}
    battles = load_battles(data["judgments"])
    style = style_features(battles, metadata, baseline)
    style = style[:, :1] if control == "length" else style
    model_features, models = one_hot_encode(battles.model.tolist(), baseline)
    outcomes = torch.tensor(battles.scores.tolist())
    coefs = fit_pairwise_model(torch.cat([model_features, style], dim=1), outcomes, max_epochs, dtype)
    k = style.shape[1]
    model_coefs = coefs[:-k]
    relative = {m: float(model_coefs[i] - model_coefs[models.index(baseline)]) for i, m in enumerate(models)}
    names = ["length", "headers", "list_items", "bold"][:k]
    return {"models": relative, "features": dict(zip(names, coefs[-k:].tolist())), "rows": len(battles)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"regenerate {DATA.relative_to(DATA.parents[2])}")
    args = parser.parse_args()
    if args.write:
        write_data(DATA)
    data = json.loads(DATA.read_text())
    print(f"{DATA.relative_to(DATA.parents[2])}: {len(data['judgments'])} judgments, "
          f"{sum(len(v) for v in data['answers'].values())} answers, seed {data['seed']}")
    print("arena-hard's add_markdown_info counts, summed per model (tokens, headers, list items, bold):")
    for model, by_uid in sorted(data["answers"].items()):
        metas = [markdown_meta(text) for text in by_uid.values()]
        sums = [sum(m["token_len"] for m in metas)] + [
            sum(sum(m[key].values()) for m in metas) for key in ("header_count", "list_count", "bold_count")]
        print(f"    {model!r}: {tuple(sums)},")
    points = 400.0 / math.log(10.0)
    for control in ("length", "style"):
        fit = reference(data, control)
        exact = reference(data, control, max_epochs=1000, dtype=torch.float64)
        gap = max(abs(fit["models"][m] - exact["models"][m]) for m in fit["models"])
        gap = max(gap, max(abs(fit["features"][f] - exact["features"][f]) for f in fit["features"]))
        print(f"\ncontrol={control}: {fit['rows']} rows; 50 float32 LBFGS iterations vs the float64 optimum: "
              f"max |difference| {gap:.2e} logits")
        print("  model logits relative to the baseline (float64 optimum), and Elo:")
        for m, v in sorted(exact["models"].items()):
            print(f"    {m!r}: {v:.6f},   # Elo {1000 + v * points:.3f}")
        print("  feature coefficients (logits per SD):")
        for f, v in exact["features"].items():
            print(f"    {f!r}: {v:.6f},")


if __name__ == "__main__":
    main()
