"""Issue 24's pure parts: self-preference from names and config.json, the length-controlled win-rate
columns in pairwise_baseline mode, and style control off leaving the table exactly the raw one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pytest_arena import rating, rating_table
from pytest_arena.config import RatingSpec
from pytest_arena.judge_bias import family, identities, self_preference


@pytest.mark.parametrize("name, expected", [("Qwen/Qwen2-1.5B-Instruct", "qwen"), ("gpt-4o", "gpt"),
                                            ("SmolLM2-135M", "smollm"), ("/models/llama-3-8b/", "llama"),
                                            ("7b-model", None), ("", None)])
def test_family_is_the_leading_letters_of_the_name(name, expected):
    assert family(name) == expected


def test_self_preference_from_names_checkpoints_and_config_json(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"_name_or_path": "Qwen/Qwen2-7B", "model_type": "qwen2"}))
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"_name_or_path": "acme/zeta-1b", "model_type": "qwen2"}))
    judge = identities("local-judge", str(checkpoint))
    candidates = {"same": identities("sft", str(checkpoint)), "kin": identities("Qwen2-0.5B-sft", None),
                  "arch": identities("zeta", str(other)), "stranger": identities("mistral-7b", None)}
    warnings = self_preference(judge, candidates)
    assert len(warnings) == 3
    assert "is candidate same" in warnings[0]
    assert "shares the qwen family with candidate kin" in warnings[1]
    assert "candidate arch have the same architecture (config.json model_type qwen2)" in warnings[2]
    assert not any("stranger" in w for w in warnings)
    assert self_preference(identities("gpt-4", None), {"gpt-4o-mini": identities("gpt-4o-mini", None)}) == [
        "self-preference: the judge gpt-4 shares the gpt family with candidate gpt-4o-mini; judges favour answers "
        "like their own"]


def _baseline_battles(seed=1, questions=40):
    """``long`` and ``other`` answer in lengths that fall either side of the baseline's; a judge that
    gives the longer answer the win 90% of the time. ``long`` is longer on most questions."""
    rng = np.random.default_rng(seed)
    rows, texts = [], {}
    for q in range(questions):
        texts["base", str(q)] = "x" * 100
        texts["long", str(q)] = "y" * int(rng.integers(60, 400))
        texts["other", str(q)] = "z" * int(rng.integers(50, 200))
        for model in ("long", "other"):
            longer = len(texts[model, str(q)]) > 100
            winner = "model_a" if (longer if rng.random() < 0.9 else not longer) else "model_b"
            rows.append((model, "base", winner, 1.0, str(q)))
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "weight", "question_id"]), rating.style_table(texts)


def test_pairwise_baseline_under_length_control_adds_the_length_controlled_win_rate():
    battles, styles = _baseline_battles()
    spec = RatingSpec(bootstrap_rounds=100, style_control="length")
    table = rating_table.battle_table(battles, ["base", "long", "other"], spec, baseline="base", styles=styles)
    frame = table.frame.set_index("Model")
    assert ["LC_Win_Rate", "LC_CI_Lower", "LC_CI_Upper"] == list(table.frame.columns[-3:])
    assert pd.isna(frame.loc["base", "LC_Win_Rate"])
    # Length is all this judge rewards: raw, the mostly longer model wins most; at zero length
    # difference (the LC win rate) it is no better than the baseline.
    assert frame.loc["long", "Baseline_Win_Rate"] > 0.7
    assert frame.loc["long", "LC_CI_Lower"] <= 0.5 <= frame.loc["long", "LC_CI_Upper"]
    for model in ("long", "other"):
        assert frame.loc[model, "LC_CI_Lower"] <= frame.loc[model, "LC_Win_Rate"] <= frame.loc[model, "LC_CI_Upper"]
    assert any("difficulty term dropped" in note for note in table.notes)  # 2 models against base: too few
    lines = rating_table.format_table(table)
    assert "LC vs baseline (95% CI)" in lines[0] and lines[-1].startswith("note: length-controlled win rate")


def test_style_control_none_is_the_raw_table_whatever_styles_are_given():
    battles, styles = _baseline_battles(seed=2)
    models = ["base", "long", "other"]
    raw = rating_table.battle_table(battles, models, RatingSpec(bootstrap_rounds=50))
    off = rating_table.battle_table(battles, models, RatingSpec(bootstrap_rounds=50, style_control="none"), styles=styles)
    assert off.frame.to_csv(index=False) == raw.frame.to_csv(index=False)
    assert off.notes == ()
    # A gate asking for length still gets it from the same table (the styles ride along).
    assert off.judged_control("length") == "length" and raw.judged_control("length") == "none"


def test_a_gate_that_asks_for_control_it_cannot_have_says_it_judged_the_raw_rating():
    from pytest_arena.config import GateSpec
    from pytest_arena.gates import evaluate_gate

    battles, styles = _baseline_battles(seed=3)
    models = ["base", "long", "other"]
    spec = RatingSpec(bootstrap_rounds=50, style_control="length")
    unstyled = rating_table.battle_table(battles, models, spec)  # no answers, so no lengths
    gate = GateSpec("long", min_elo=0.0)
    result = evaluate_gate(gate, unstyled)
    assert result.control == "none"
    assert result.message.splitlines()[-1].startswith("not length-controlled: the answers' lengths are not known")
    styled = evaluate_gate(gate, rating_table.battle_table(battles, models, spec, styles=styles))
    assert styled.control == "length" and "not length-controlled" not in styled.message
