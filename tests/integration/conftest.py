"""Fixtures that start shortd for a test and always stop it afterwards."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from shortd import Server  # noqa: E402


@pytest.fixture
def make_server(tmp_path):
    """Returns a function that creates (but does not start) servers; each is
    killed at the end of the test if it still runs."""
    servers = []

    def factory(args=(), env=None, folder=None, **kwargs):
        server = Server(folder or tmp_path, args, env, **kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.kill()

    # A sanitizer report fails the test even when the test itself passed,
    # for example because the report came after its last request.
    problems = [problem for problem in (server.sanitizer_problem() for server in servers)
                if problem is not None]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def server(make_server):
    """A running shortd with an admin key and two I/O threads."""
    return make_server(["--threads", "2", "--workers", "2"]).start()
