"""``rating_gen`` (how battles become ratings) and ``gates`` (what a run must reach to pass)."""

from __future__ import annotations

import difflib
from pathlib import Path

from ..errors import ArenaConfigError, excerpt, kind_of
from .audit import is_judge_gate, read_judge_gate
from .section import MAX_BOOTSTRAP_ROUNDS, MAX_ELO_K, NUMBER, SEED, Section
from .specs import GATE_ALIASES, GATE_KINDS, METRICS, STYLE_CONTROLS, GateSpec, RatingSpec, ReviewSpec

# rating_gen.style_control when the config does not say: chosen from bench/ratings_study.py's style
# study (study 6): length control costs the gates' power at most a few points there, and it keeps a
# verbose fine-tune from passing `beats` on a length-biased judge.
DEFAULT_STYLE_CONTROL = "length"
# Beyond this an early pass of a regression gate stops meaning much: at 0.15 the study's worst gate already
# lost 9 points of power against the full run (bench/README.md section 5).
MAX_STOP_POWER_COST = 0.2
STOP_POWER_COST = f"a number from 0 to {MAX_STOP_POWER_COST}"


def read_rating(section: Section, resolve, results: Path, models, review: ReviewSpec) -> RatingSpec:
    section.check_keys(("enable", "metrics", "report_file", "baseline_model", "elo_k", "bootstrap_rounds",
                        "bootstrap_by", "seed", "style_control", "stop_when_decided", "stop_power_cost"))
    metrics = section.get("metrics", (list, str), ["elo"], expected="a list of metrics")
    metrics = [metrics] if isinstance(metrics, str) else metrics
    if not metrics:
        section.fail("metrics", f"expected at least one of {', '.join(METRICS)}")
    for i, metric in enumerate(metrics):
        if metric not in METRICS:
            close = difflib.get_close_matches(metric, METRICS, n=1) if isinstance(metric, str) else []
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            section.fail(f"metrics[{i}]", f"expected one of {', '.join(METRICS)}, got {excerpt(metric)}{hint}")
    baseline = section.get("baseline_model", str, expected="a model name")
    if (baseline is not None and baseline not in models and review.baseline_file is None
            and not names_read_from_files(review, models)):
        section.fail("baseline_model", f"expected one of the models in answers_gen ({', '.join(models)}), got {excerpt(baseline)}")
    report = section.get("report_file", str, expected="a file path")
    power_cost = section.get("stop_power_cost", NUMBER, expected=STOP_POWER_COST,
                             check=lambda v: 0 <= v <= MAX_STOP_POWER_COST)
    return RatingSpec(
        enable=section.get("enable", bool, True, expected="true or false"),
        metrics=tuple(metrics),
        report_file=resolve(report) if report else results / "reports" / "rating.csv",
        baseline_model=baseline,
        elo_k=float(section.get("elo_k", NUMBER, 32.0, expected="a positive number", check=lambda v: v > 0,
                                at_most=MAX_ELO_K)),
        bootstrap_rounds=section.get("bootstrap_rounds", int, 1000, expected="an integer >= 0", check=lambda v: v >= 0,
                                     at_most=MAX_BOOTSTRAP_ROUNDS),
        bootstrap_by=section.choice("bootstrap_by", ("battle", "question"), "question"),
        seed=section.get("seed", int, 0, **SEED),
        style_control=read_control(section, "style_control", DEFAULT_STYLE_CONTROL),
        stop_when_decided=section.get("stop_when_decided", bool, False, expected="true or false"),
        stop_power_cost=None if power_cost is None else float(power_cost),
    )


def read_control(section: Section, key: str, default: str | None) -> str | None:
    """A style control (``none``, ``length`` or ``style``). Not ``Section.choice``: that reads the word
    "none" as null, and here "none" is a value of its own (raw ratings)."""
    value = section.data.get(key, default)
    if value not in STYLE_CONTROLS:
        close = difflib.get_close_matches(value, STYLE_CONTROLS, n=1) if isinstance(value, str) else []
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        got = excerpt(value) if isinstance(value, str) else "null" if value is None else kind_of(value)
        section.fail(key, f"expected one of {', '.join(STYLE_CONTROLS)}, got {got}{hint}")
    return value


def names_read_from_files(review: ReviewSpec, models) -> bool:
    """Whether ``reviews_gen.target_answers`` holds answer files of models outside answers_gen: their names
    are read from the files' records when the run is planned, so a baseline or gate naming a model outside
    answers_gen is checked then, against the models that take part (``validation.check_plan``)."""
    own = {spec.output_file for spec in models.values()}
    return any(path not in own for path in review.target_answers or ())


def read_gates(file: Path, data, models, baseline: str | None, names_open: bool = False) -> tuple[GateSpec, ...]:
    """``names_open``: models may also come from target_answers files (``names_read_from_files``)."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ArenaConfigError(file, "gates", f"expected a list of gates, got {kind_of(data)}")
    known = list(models) + ([baseline] if baseline and baseline not in models else [])
    thresholds = tuple(GATE_KINDS.values())
    written = (*GATE_ALIASES, *thresholds)  # what a gate may name its threshold
    gates = []
    for i, entry in enumerate(data):
        gate = Section(file, f"gates[{i}]", entry)
        if is_judge_gate(entry):  # a gate on the judge, not on a model (config/audit.py)
            gates.append(read_judge_gate(gate))
            continue
        gate.check_keys(("model", *written, "margin", "control"))
        model = gate.get("model", str, expected="a model name")
        if model is None:
            gate.fail("model", "missing; expected the name of a model in answers_gen")
        if model not in known and not names_open:
            gate.fail("model", f"expected one of the models in answers_gen ({', '.join(known)}), got {excerpt(model)}")
        given = [key for key in written if gate.data.get(key) is not None]
        if len(given) != 1:
            gate.fail("", f"expected exactly one threshold: {', '.join(written)}; got {', '.join(given) or 'none'}")
        beats = gate.get("beats", str, expected="a model name")
        if beats is not None and beats not in known and not names_open:
            gate.fail("beats", f"expected one of the models in answers_gen ({', '.join(known)}), got {excerpt(beats)}")
        values = {key: gate.get(key, NUMBER, expected="a number") for key in thresholds if key != "beats"}
        for alias, key in GATE_ALIASES.items():  # only one threshold is given: an alias fills an empty field
            values[key] = gate.get(alias, NUMBER, values[key], expected="a number")
        if values["max_drop"] is not None and values["max_drop"] < 0:
            gate.fail("max_drop", f"expected a number >= 0, got {excerpt(values['max_drop'])}")
        if values["min_win_rate"] is not None and not 0 <= values["min_win_rate"] <= 1:
            gate.fail("min_win_rate", f"expected a number between 0 and 1, got {excerpt(values['min_win_rate'])}")
        margin = gate.get("margin", NUMBER, 0.0, expected="a number >= 0", check=lambda v: v >= 0)
        control = read_control(gate, "control", None) if "control" in gate.data else None
        gates.append(GateSpec(model, beats=beats, margin=float(margin), control=control,
                              **{k: None if v is None else float(v) for k, v in values.items()}))
    return tuple(gates)
