"""The arena suite's fixture. The suite's modules import it, so it is theirs: a fixture of the same
name in a user's conftest or plugin cannot shadow it (module fixtures come first), and its name is
one users will not take."""

import pytest

from .stash import SESSION_KEY


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
