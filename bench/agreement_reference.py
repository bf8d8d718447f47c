"""Reference numbers for the judge audit's agreement: FastChat's own ``compute_agreement.py`` on a small file.

    python -m venv /tmp/fschat_venv                                   # NOT the project's venv
    /tmp/fschat_venv/bin/pip install --no-deps fschat==0.2.36 && /tmp/fschat_venv/bin/pip install numpy
    python bench/agreement_reference.py --fastchat-python /tmp/fschat_venv/bin/python   # compare (project venv)
    python bench/agreement_reference.py --write ...            # (re)generate the two files first (seeded)
    /tmp/fschat_venv/bin/python bench/agreement_reference.py --reference   # FastChat's figures only, as JSON

Source: lm-sys/FastChat, PyPI ``fschat`` 0.2.36, ``fastchat/llm_judge/compute_agreement.py`` (the same text
as the repository's file): ``get_mt_bench_votes_data`` builds the per-turn votes of each pair from the vote
files, ``get_mt_bench_agreement(data[turn], judge1, judge2, ban)`` counts (agree, total); both are called
unmodified, as its ``run_mt_bench_agreement`` calls them, for judges ``gpt4-pair`` against ``human`` and
``human`` against ``human``, turns 1 and 2, ``ban=[]`` ("with tie") and ``ban=["tie"]`` ("without tie").
``fschat``'s dependencies are not needed for this module (it imports argparse, json, os, numpy), hence
``--no-deps``.

The files, in FastChat's formats (``lmsys/mt_bench_human_judgments``), written by ``--write``:

* ``tests/data/audit_human_judgments.json``: human labels, a JSON array of ``question_id, model_a, model_b,
  winner, judge, conversation_a, conversation_b, turn``: 8 two-turn questions, 3 models, annotators
  ``expert_0``..``expert_3`` (several on one pair) and ``author_0``/``author_1`` (FastChat's "human" is the
  experts only: ``get_judge_name``), winners with ``tie`` and ``tie (bothbad)``, each label listing the
  two models in either order;
* ``tests/data/audit_gpt4_pair_judgments.json``: the judge's verdicts, FastChat's ``gpt4_pair`` split: one
  verdict a pair and turn, ``judge`` = ``["gpt-4", "pair-v2"]`` (turn 2: ``pair-v2-multi-turn``), winners
  with ``tie`` and ``tie (inconsistent)`` (its two orders disagreed); a few labelled pairs have no verdict.

Ours: ``audit_labels.read_labels`` on both files, the experts' labels (``select_annotators(..., "expert")``)
against the verdicts (``agreement.verdicts_from_labels``), ``agreement.audit_table(by="turn")`` and
``agreement.label_agreement`` per turn. The script fails unless every count equals FastChat's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HUMAN = ROOT / "tests" / "data" / "audit_human_judgments.json"
GPT4 = ROOT / "tests" / "data" / "audit_gpt4_pair_judgments.json"
SEED = 20260126
MODELS = {"alpha-7b": 0.0, "beta-13b": 0.6, "gamma-70b": 1.3}  # quality, logits
CATEGORIES = ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"]
WORDS = "the answer explains each step with care and gives one example that a reader can check".split()


def write_files() -> None:
    import numpy as np

    rng = np.random.default_rng(SEED)
    models = sorted(MODELS)
    questions = {81 + i: [f"{c} question {81 + i}, first turn?", f"{c} question {81 + i}, follow-up?"]
                 for i, c in enumerate(CATEGORIES)}
    answers = {(q, m): [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 40)))) for _ in range(2)]
               for q in questions for m in models}

    def conversation(q, m):
        return [msg for t in range(2) for msg in ({"role": "user", "content": questions[q][t]},
                                                   {"role": "assistant", "content": answers[(q, m)][t]})]

    def record(q, a, b, winner, judge, turn):
        return {"question_id": q, "model_a": a, "model_b": b, "winner": winner, "judge": judge,
                "conversation_a": conversation(q, a), "conversation_b": conversation(q, b), "turn": turn}

    def listed(pair, truth):
        """The pair in a random order, and the winner in that order."""
        a, b = pair if rng.random() < 0.5 else pair[::-1]
        winner = truth if truth.startswith("tie") else ("model_a" if truth == a else "model_b")
        return a, b, winner

    human, gpt4 = [], []
    pairs = [(x, y) for i, x in enumerate(models) for y in models[i + 1:]]
    for q in questions:
        for pair in pairs:
            for turn in (1, 2):
                gap = MODELS[pair[1]] - MODELS[pair[0]] + rng.normal(0, 0.8)
                p_second = 1 / (1 + np.exp(-gap))

                def truth(noise):
                    u = rng.random()
                    if u < 0.18 + noise:
                        return "tie (bothbad)" if rng.random() < 0.35 else "tie"
                    return pair[1] if rng.random() < p_second else pair[0]

                consensus = truth(0.0)  # what a careful reader sees; each vote follows it or its own reading

                def vote(follows, noise=0.0):
                    return consensus if rng.random() < follows else truth(noise)

                voters = [f"expert_{k}" for k in rng.choice(4, size=int(rng.choice([0, 1, 1, 2, 3])), replace=False)]
                if rng.random() < 0.25:
                    voters.append(f"author_{int(rng.integers(0, 2))}")
                for voter in voters:
                    human.append(record(q, *listed(pair, vote(0.6)), voter, turn))
                if rng.random() < 0.08 and voters:
                    continue  # a labelled pair the judge gave no verdict on
                said = vote(0.55, 0.05)
                if said == "tie (bothbad)":  # a judge says tie; its order disagreements are "tie (inconsistent)"
                    said = "tie (inconsistent)"
                judge = ["gpt-4", "pair-v2" if turn == 1 else "pair-v2-multi-turn"]
                gpt4.append(record(q, *listed(pair, said), judge, turn))
    order = rng.permutation(len(human))
    for path, records in ((HUMAN, [human[i] for i in order]), (GPT4, gpt4)):
        # one JSON array, as FastChat's files are, one record a line so that errors name useful lines
        path.write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")


def fastchat_figures() -> dict:
    """FastChat's counts, from its own functions: {"gpt4-pair/human" | "human/human": {turn: {with, without}}}."""
    from fastchat.llm_judge import compute_agreement as fc

    votes = [json.loads(HUMAN.read_text()), json.loads(GPT4.read_text())]
    data = fc.get_mt_bench_votes_data(votes)
    out: dict = {}
    for judges in (("gpt4-pair", "human"), ("human", "human")):
        out["/".join(judges)] = {
            str(turn): {name: list(fc.get_mt_bench_agreement(data[turn - 1], *judges, ban=ban))
                        for name, ban in (("with_tie", []), ("without_tie", ["tie"]))}
            for turn in (1, 2)}
    return out


def our_figures() -> dict:
    sys.path.insert(0, str(ROOT))
    from pytest_arena.audit_labels import read_labels, select_annotators
    from pytest_arena.rating import agreement as ag

    experts = select_annotators(read_labels(HUMAN), "expert")
    verdicts = ag.verdicts_from_labels(read_labels(GPT4), judge="gpt4-pair")
    table = ag.audit_table(verdicts, experts, by="turn", rounds=200).set_index("group")
    out: dict = {"gpt4-pair/human": {}, "human/human": {}}
    for turn in (1, 2):
        row = table.loc[str(turn)]
        out["gpt4-pair/human"][str(turn)] = {
            "with_tie": [int(row["agreement_hits"]), int(row["agreement_total"])],
            "without_tie": [int(row["agreement_no_ties_hits"]), int(row["agreement_no_ties_total"])]}
        mine = [x for x in experts if x.turn == turn]
        out["human/human"][str(turn)] = {
            name: [ag.label_agreement(mine, ties).hits, ag.label_agreement(mine, ties).total]
            for name, ties in (("with_tie", True), ("without_tie", False))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="regenerate the two files (seeded) first")
    parser.add_argument("--reference", action="store_true", help="print FastChat's figures (run with fschat installed)")
    parser.add_argument("--fastchat-python", default="/tmp/fschat_venv/bin/python",
                        help="a Python with fschat installed, for the reference figures")
    args = parser.parse_args()
    if args.write:
        write_files()
    if args.reference:
        print(json.dumps(fastchat_figures(), indent=1))
        return
    done = subprocess.run([args.fastchat_python, __file__, "--reference"], capture_output=True, text=True, check=True)
    reference, ours = json.loads(done.stdout), our_figures()
    for judges, turns in reference.items():
        for turn, figures in turns.items():
            for name, (agree, total) in figures.items():
                mine = ours[judges][turn][name]
                flag = "ok" if mine == [agree, total] else "DIFFERENT"
                print(f"{judges:16} turn {turn} {name:12} FastChat {agree:3}/{total:<3} = {agree / total:.4f}   "
                      f"ours {mine[0]:3}/{mine[1]:<3}  {flag}")
    if ours != reference:
        sys.exit("our agreement differs from FastChat's")
    labels = json.loads(HUMAN.read_text())
    print(f"{len(labels)} labels ({sum(x['judge'].startswith('expert') for x in labels)} by experts), "
          f"{len(json.loads(GPT4.read_text()))} judge verdicts: every count equals FastChat's")


if __name__ == "__main__":
    main()
