"""Suite-wide settings. Tier folders hold their own fixtures."""

from collections.abc import Iterator

import pytest

from tests.support import live_frames


@pytest.fixture(autouse=True, scope="session")
def _live_frames_match_the_asyncapi_document() -> Iterator[None]:
    """Every message a test receives on a live channel is validated against /asyncapi.json
    (tests/support/live_frames.py): a message that drifts fails the test that received it."""
    with live_frames.installed():
        yield
