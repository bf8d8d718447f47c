"""Fixtures of an arena run; registered as a plugin only when an arena config is active."""

import pytest

from .plugin import SESSION_KEY


@pytest.fixture(scope="session")
def arena(request: pytest.FixtureRequest):
    """The run's ArenaSession, with every needed answer generated and the judgments under way.

    Models load here, one at a time, only for answers the cache lacks; a failure errors every item
    that needs the arena instead of failing one battle by chance.
    """
    session = request.config.stash[SESSION_KEY]
    session.prepare()
    return session
