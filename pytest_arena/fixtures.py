"""The arena suite's fixture. The suite's modules import it, so it is theirs: a fixture of the same
name in a user's conftest or plugin cannot shadow it (module fixtures come first), and its name is
one users will not take.

Also ``arena_answer`` (and the per-model fixture behind it), for the user's own checks on every answer
(``answer_checks``): this module is registered as a plugin while an arena runs, so any test module
given beside --arena-config can take it."""

import pytest

from .item_stash import SESSION_KEY


@pytest.fixture
def _arena_run(request: pytest.FixtureRequest):
    """The run's ArenaSession, with every needed answer generated and the judgments made or under way.

    The work is done before the first item (``ArenaSession.prepare_run``, from the plugin's run loop),
    so no item's timeout counts it. If it failed, every item that needs the arena errors with its
    error, instead of one battle failing by chance; a rerun of an item takes the preparation up again
    where it stopped (``ArenaSession.ready_for``).
    """
    session = request.config.stash[SESSION_KEY]
    session.ready_for(request.node.nodeid)
    return session


# -------------------------------------------------------------------------------------------------
# Your own checks on every answer (``answer_checks``)


@pytest.fixture(scope="session")
def _arena_model_answers(request: pytest.FixtureRequest):
    """One model's answers (``request.param``: its name), for every answer item of that model.

    Session-scoped and parametrized per model: pytest sets it up for a model's first selected item
    and tears it down before the next model's, so a model that no selected item needs is never
    loaded. A model that generates is released as soon as its answers exist (``AnswerMaker``); its
    answers stay in the answers file, where the battles find them too."""
    from .answer_checks import model_answers

    return model_answers(request.config.stash[SESSION_KEY], request.param)


@pytest.fixture
def arena_answer(request: pytest.FixtureRequest, _arena_model_answers):
    """One model's answer to one question (``answer_checks.ArenaAnswer``): ``.model``, ``.question_id``,
    ``.question`` (the last turn's text), ``.turns``, ``.text`` (the answer's last turn), ``.category``,
    ``.reference``. The plugin parametrizes it: one item per question x model, ``[q017-MODEL]``."""
    from .answer_checks import arena_answer as answer_value

    return answer_value(_arena_model_answers, request.param)
