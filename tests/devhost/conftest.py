"""One local host (the fixture app) shared by the end-to-end tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.host import (
    FIXTURE_APP,
    FIXTURE_BODY_LIMIT,
    Host,
    start_fixture_app,
    stop_host,
)


@pytest.fixture(scope="module")
def devhost(azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    """The fixture app on a real Azurite, with a small request body limit."""
    host = start_fixture_app(
        FIXTURE_APP,
        azurite.connection_string,
        tmp_path_factory.mktemp("devhost"),
        {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(FIXTURE_BODY_LIMIT)},
    )
    try:
        yield host
    finally:
        code = stop_host(host)
        assert code == 0, f"the host exited with {code}:\n{host.log()}"
