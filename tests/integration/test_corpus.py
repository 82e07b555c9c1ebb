"""The main job on real input: 100,000 URLs from Debian package metadata go
in through the API and must come out of the redirect byte for byte, after
restarts and with a cache far smaller than the data."""

import pytest

from shortd import create_requests, error_code, get_requests, load_corpus, run_parallel

# Lines of the corpus that are not valid URLs, with the error each must get.
# Each was read by hand; the reason is written beside it.
EXPECTED_REJECTIONS = {
    # A template with an unfilled %s: '%' must start a two-digit escape.
    "https://pypi.org/project/%s/": "invalid_url",
    "https://github.com/pypa/pip/issues/%s": "invalid_url",
    "https://github.com/pypa/pip/pull/%s": "invalid_url",
    # A placeholder where the port number belongs.
    "http://host:port/json/list": "invalid_url",
    "http://127.0.0.1:$": "invalid_url",
    # Shell or nginx variables in place of a host name.
    "http://$host:$server_port$request_uri": "invalid_url",
    "http://$URL": "invalid_host",
    "https://example.org$": "invalid_host",
    # Regular expressions, not host names.
    "http://.+": "invalid_host",
    "http://.*cairographics.org": "invalid_host",
    "http://.*freedesktop.org": "invalid_host",
    # A wildcard pattern: '*' cannot appear in a host name.
    "https://*.example.com.proxy": "invalid_host",
    # A truncated host with ')' in it.
    "https://translationproject.or)-.35": "invalid_host",
    # Two URLs run together: the host would contain a comma.
    "http://www.zlib.org,http://www.zlib.org": "invalid_host",
    # No host at all.
    "http://": "invalid_url",
}

# Valid URLs whose stored form differs: internationalised hosts become ASCII.
EXPECTED_CHANGES = {
    "https://%CF%80.example.com/foo": "https://xn--1xa.example.com/foo",
}


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def check_redirects(server, accepted):
    codes = [code for code, _ in accepted]
    responses = run_parallel(server.port, get_requests(codes), connections=8, window=64)
    wrong = []
    for (code, url), response in zip(accepted, responses):
        if response.status != 301 or response.header("location") != url:
            wrong.append((code, url, response.status, response.header("location")))
    assert not wrong, "%d redirects wrong, first: %r" % (len(wrong), wrong[:5])


def test_corpus_round_trip(make_server, corpus):
    assert len(corpus) == 100000
    server = make_server(["--threads", "2", "--workers", "4"]).start()

    responses = run_parallel(server.port, create_requests(corpus), connections=48, window=8)

    accepted = []
    rejected = {}
    code_of = {}
    for url, response in zip(corpus, responses):
        assert response.status in (200, 201, 400), (url, response)
        if response.status == 400:
            rejected[url] = error_code(response)
            continue
        stored = response.json()["url"]
        code = response.json()["code"]
        assert stored == EXPECTED_CHANGES.get(url, url), (url, stored)
        # A URL seen before is deduplicated: 200 with the same link. The
        # first of two concurrent equal creates gets 201, the other 200.
        if stored in code_of:
            assert code == code_of[stored], (url, code, code_of[stored])
        code_of[stored] = code
        accepted.append((code, stored))

    assert rejected == EXPECTED_REJECTIONS
    assert len(accepted) == len(corpus) - len(EXPECTED_REJECTIONS)
    assert len(set(code_of.values())) == len(code_of)
    assert sum(r.status == 201 for r in responses) == len(code_of)

    check_redirects(server, accepted)

    assert server.stop() == 0
    server.start()
    check_redirects(server, accepted)

    # About 60 bytes per link would need ~6 MB; 256 KB keeps almost nothing,
    # so nearly every redirect is read from the store.
    assert server.stop() == 0
    server.start(["--cache-size", "256K"])
    check_redirects(server, accepted)
    assert server.stop() == 0
