"""What the battle browser shows, as plain data: every battle of the run with its question, answers,
reference, the judge's replies and verdict, plus the rating table, the gates and the flips.

Every text is stored once in a table of strings (``strings``) and named by its index: a model's answer
to a question appears in each of its battles, and at 20,000 battles the page would otherwise carry it
n-1 times. Every text goes through ``redact.scrub``, as the review records do: the page holds the
judge's replies, which a proxy may have filled with our request's headers.
"""

from __future__ import annotations

from ..redact import scrub

VERDICT = {"model_a": "A", "model_b": "B", "tie": "tie"}


class Strings:
    """The page's table of texts: each distinct text once, scrubbed of secrets."""

    def __init__(self):
        self.texts: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, text: str) -> int:
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.texts)
            self.texts.append(scrub(text))
        return found

    def add_turns(self, turns) -> list[int] | None:
        return None if turns is None else [self.add(str(turn)) for turn in turns]


class PageData:
    """Builds the page's data: questions once each, battles in plan order."""

    def __init__(self, models: list[str]):
        self.strings = Strings()
        self.models = list(models)
        self._model_index = {name: i for i, name in enumerate(self.models)}
        self.questions: list[dict] = []
        self._question_index: dict[tuple, int] = {}
        self.battles: list[dict] = []

    def model(self, name: str) -> int:
        if name not in self._model_index:
            self._model_index[name] = len(self.models)
            self.models.append(name)
        return self._model_index[name]

    def question(self, question, label: str) -> int:
        found = self._question_index.get(question.key)
        if found is None:
            found = self._question_index[question.key] = len(self.questions)
            self.questions.append({
                "label": label, "id": str(question.question_id), "category": question.category,
                "set": question.question_set, "turns": self.strings.add_turns(question.turns),
                "reference": self.strings.add_turns(question.reference),
            })
        return found

    def add(self, match, label: str, answers: list, judgment=None, failure: str | None = None) -> None:
        """One battle (or scoring): ``answers`` holds each side's turns (None: no answer); ``judgment``
        its Judgment (with the judge's replies, also one an xdist worker made), or ``failure`` the error
        its judging raised."""
        entry = {
            "id": match.id, "q": self.question(match.question, label),
            "m": [self.model(name) for name in match.models],
            "answers": [self.strings.add_turns(turns) for turns in answers],
        }
        if failure is not None:
            entry.update(verdict="error", error=scrub(failure), replies=[])
        else:
            entry.update(_verdict(judgment))
            self._judged(entry, judgment)
        self.battles.append(entry)

    def _judged(self, entry: dict, judgment) -> None:
        """The judge's side of a battle: its replies (each turn's, where turns were judged one by one),
        template(s), cache state, position consistency and whether a reference answer was shown."""
        replies = judgment.replies
        entry["replies"] = [self._reply(reply) for reply in replies]
        entry["cached"] = all(reply.cached for reply in replies) if replies else None
        entry["template"] = ", ".join(dict.fromkeys(reply.template for reply in replies if reply.template))
        entry["reference"] = any(reply.needs_reference for reply in replies)
        entry["consistent"] = _consistent(entry["replies"])

    def _reply(self, reply) -> dict:
        shown = {"text": self.strings.add(reply.text or ""), "swapped": reply.swapped, "verdict": "error",
                 "cached": reply.cached}
        if reply.winner is not None:
            shown["verdict"] = VERDICT[reply.winner]
        elif reply.score is not None:
            shown.update(verdict="score", score=reply.score)
        if reply.error:
            shown["error"] = scrub(reply.error)
        if reply.turn is not None:
            shown["turn"] = reply.turn
        if reply.judge is not None:  # a panel's judge (judging/panel.py)
            shown["judge"] = reply.judge
        return shown

    def to_dict(self) -> dict:
        return {"models": self.models, "strings": self.strings.texts, "questions": self.questions,
                "battles": self.battles}


def _verdict(judgment) -> dict:
    if judgment.error:
        return {"verdict": "error", "error": scrub(judgment.error)}
    if judgment.score is not None:
        return {"verdict": "score", "score": judgment.score}
    return {"verdict": VERDICT.get(judgment.winner, "error")}


def _consistent(replies: list[dict]) -> bool | None:
    """Under swap_position, whether both orders gave the same verdict (on every turn judged); None
    without two verdicts to compare."""
    by_turn: dict = {}
    for reply in replies:
        by_turn.setdefault((reply.get("judge"), reply.get("turn")), []).append(reply["verdict"])
    agree = [v[0] == v[1] for v in by_turn.values() if len(v) == 2 and not {"error", "score"} & set(v)]
    if not agree or len(agree) != len(by_turn):
        return None
    return all(agree)
