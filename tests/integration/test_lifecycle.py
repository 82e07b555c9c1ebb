"""Link lifecycle over HTTP against the real binary: aliases, expiry, visit
limits, per-link redirect status and caching, and deduplication."""

import datetime
import time

import pytest

from shortd import ADMIN_KEY, error_code, get_requests, run_parallel
from support import (ADMIN, EventStream, create_request, expect_error, list_all_codes,
                     read_link, rfc3339_in, send_at_once, wait_for_visits, wait_until)
from support import no_sanitizer_report  # noqa: F401 (an autouse fixture)

URL = "https://example.org/lifecycle"


def links_count(server):
    return len(list_all_codes(server))


# ---- aliases ----

def test_alias_becomes_code(server):
    response = server.create(URL, alias="spring-sale_2026")
    assert response.status == 201, response
    link = response.json()
    assert link["code"] == "spring-sale_2026", link
    assert link["short_url"] == "http://short.test/spring-sale_2026", link
    assert response.header("location") == "/api/v1/links/spring-sale_2026", response

    redirect = server.request("GET", "/spring-sale_2026")
    assert redirect.status == 301, redirect
    assert redirect.header("location") == URL, redirect
    assert read_link(server, "spring-sale_2026") == link


def test_alias_lengths_one_and_64_accepted(server):
    for alias in ("x", "A" * 64):
        response = server.create(URL + "/" + alias, alias=alias)
        assert response.status == 201, (alias, response)
        assert response.json()["code"] == alias, response
        assert server.request("GET", "/" + alias).status == 301, alias


def test_alias_is_case_sensitive(server):
    lower = server.create("https://example.org/lower", alias="promo")
    upper = server.create("https://example.org/upper", alias="PROMO")
    assert lower.status == 201, lower
    assert upper.status == 201, upper
    assert server.request("GET", "/promo").header("location") == "https://example.org/lower"
    assert server.request("GET", "/PROMO").header("location") == "https://example.org/upper"


def test_taken_alias_is_409_and_keeps_first(server):
    first = server.create("https://example.org/first", alias="taken")
    assert first.status == 201, first
    before = links_count(server)

    second = server.create("https://example.org/second", alias="taken")
    expect_error(second, 409, "alias_taken")
    # Same URL as the first: an alias is never deduplicated into a 200.
    third = server.create("https://example.org/first", alias="taken")
    expect_error(third, 409, "alias_taken")

    assert links_count(server) == before
    redirect = server.request("GET", "/taken")
    assert redirect.header("location") == "https://example.org/first", redirect


def test_alias_equal_to_generated_code_is_409(server):
    code = server.create(URL).json()["code"]
    response = server.create("https://example.org/other", alias=code)
    expect_error(response, 409, "alias_taken")
    assert server.request("GET", "/" + code).header("location") == URL


def test_alias_of_deleted_link_stays_taken(server):
    assert server.create(URL, alias="retired").status == 201
    assert server.request("DELETE", "/api/v1/links/retired", None, ADMIN).status == 204
    response = server.create("https://example.org/new-owner", alias="retired")
    expect_error(response, 409, "alias_taken")
    assert server.request("GET", "/retired").status == 410


def test_concurrent_same_alias_one_wins(server):
    requests = [create_request("https://example.org/race/%d" % i, alias="race")
                for i in range(20)]
    responses = send_at_once(server.port, requests)

    statuses = sorted(response.status for response in responses)
    assert statuses == [201] + [409] * 19, responses
    winner = next(i for i, r in enumerate(responses) if r.status == 201)
    for response in responses:
        if response.status == 409:
            assert error_code(response) == "alias_taken", response
    redirect = server.request("GET", "/race")
    assert redirect.header("location") == "https://example.org/race/%d" % winner, redirect


@pytest.mark.parametrize("alias", ["api", "API", "healthz", "HealthZ", "readyz", "metrics",
                                   "Metrics", "static", "STATIC"])
def test_reserved_alias_rejected(server, alias):
    before = links_count(server)
    response = server.create(URL, alias=alias)
    expect_error(response, 400, "reserved_alias")
    assert links_count(server) == before


def test_near_reserved_alias_accepted(server):
    for alias in ("apis", "api-docs", "static_", "healthzz"):
        response = server.create(URL + "/" + alias, alias=alias)
        assert response.status == 201, (alias, response)


@pytest.mark.parametrize("alias", ["", "a" * 65, "a.b", "a/b", "a b", "caf\u00e9", "a%41",
                                   "~x", 123, True, ["a"], {"a": 1}])
def test_malformed_alias_rejected(server, alias):
    before = links_count(server)
    response = server.create(URL, alias=alias)
    expect_error(response, 400, "invalid_alias")
    assert links_count(server) == before


def test_null_alias_means_generated_code(server):
    response = server.create(URL, alias=None)
    assert response.status == 201, response
    assert len(response.json()["code"]) == 7, response


def test_alias_survives_restart(server):
    assert server.create(URL, alias="durable").status == 201
    assert server.stop() == 0
    server.start()
    assert server.request("GET", "/durable").header("location") == URL
    expect_error(server.create(URL, alias="durable"), 409, "alias_taken")


# ---- expiry ----

@pytest.mark.parametrize("text, utc", [
    ("2031-06-01T12:00:00Z", "2031-06-01T12:00:00Z"),
    ("2031-06-01t12:00:00z", "2031-06-01T12:00:00Z"),
    ("2031-06-01T12:00:00.987654Z", "2031-06-01T12:00:00Z"),
    ("2031-06-01T12:00:00+05:30", "2031-06-01T06:30:00Z"),
    ("2031-06-01T20:00:00-08:00", "2031-06-02T04:00:00Z"),
    ("2031-01-01T00:30:00+01:00", "2030-12-31T23:30:00Z"),
    ("2032-02-29T00:00:00-00:00", "2032-02-29T00:00:00Z"),
])
def test_expires_at_offsets_normalised(server, text, utc):
    response = server.create(URL, expires_at=text)
    assert response.status == 201, (text, response)
    assert response.json()["expires_at"] == utc, response
    assert read_link(server, response.json()["code"])["expires_at"] == utc


@pytest.mark.parametrize("text", [
    "2031-06-01", "2031-06-01 12:00:00Z", "2031-06-01T12:00:00", "2031-06-01T12:00Z",
    "2031-02-29T00:00:00Z", "2031-13-01T00:00:00Z", "2031-06-31T00:00:00Z",
    "2031-06-01T24:00:00Z", "2031-06-01T12:60:00Z", "2031-06-01T12:00:00+24:00",
    "2031-06-01T12:00:00+0530", "2031-06-01T12:00:00.Z", "31-06-01T12:00:00Z",
    "2031-06-01T12:00:00Z ", "tomorrow", "", 1999999999, True,
])
def test_malformed_expires_at_rejected(server, text):
    before = links_count(server)
    response = server.create(URL, expires_at=text)
    expect_error(response, 400, "invalid_expires_at")
    assert links_count(server) == before


@pytest.mark.parametrize("text", ["2000-01-01T00:00:00Z", "1970-01-01T00:00:00Z"])
def test_past_expires_at_rejected(server, text):
    before = links_count(server)
    expect_error(server.create(URL, expires_at=text), 400, "invalid_expires_at")
    expect_error(server.create(URL, expires_at=rfc3339_in(-2)), 400, "invalid_expires_at")
    assert links_count(server) == before


def test_expired_link_is_410_but_readable(make_server):
    server = make_server(["--flush-interval", "0.2"]).start()
    with EventStream(server.port, ADMIN_KEY, topics="links") as stream:
        response = server.create(URL, expires_at=rfc3339_in(2.5))
        assert response.status == 201, response
        link = response.json()
        code = link["code"]
        assert server.request("GET", "/" + code).status == 301

        # HEAD polls without counting visits.
        wait_until(lambda: server.request("HEAD", "/" + code).status == 410, timeout=10,
                   description="410 for the expired link")
        expect_error(server.request("GET", "/" + code), 410, "link_expired")

        read = server.request("GET", "/api/v1/links/" + code)
        assert read.status == 200, read
        assert read.json()["code"] == code, read
        assert read.json()["expires_at"] == link["expires_at"], read
        assert read.json()["url"] == URL, read

        # Once the sweep has marked it, and after a restart, nothing changes.
        stream.wait_for_event("link.expired", code)
    expect_error(server.request("GET", "/" + code), 410, "link_expired")
    assert server.stop() == 0
    server.start()
    expect_error(server.request("GET", "/" + code), 410, "link_expired")
    assert server.request("GET", "/api/v1/links/" + code).status == 200


def test_link_expiring_while_stopped_is_410(make_server):
    # A long flush interval, so that no expiry sweep runs before the checks.
    server = make_server(["--flush-interval", "3600"]).start()
    expires_at = rfc3339_in(1.0)
    code = server.create(URL, expires_at=expires_at).json()["code"]
    assert server.stop() == 0
    moment = datetime.datetime.strptime(expires_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    while datetime.datetime.now(datetime.timezone.utc) <= moment:
        time.sleep(0.05)
    server.start()
    expect_error(server.request("GET", "/" + code), 410, "link_expired")
    assert server.request("HEAD", "/" + code).status == 410
    assert read_link(server, code)["url"] == URL


def test_expired_link_visits_not_counted(make_server):
    server = make_server(["--flush-interval", "0.2"]).start()
    code = server.create(URL, expires_at=rfc3339_in(2.5)).json()["code"]
    assert server.request("GET", "/" + code).status == 301
    # HEAD polls without counting visits.
    wait_until(lambda: server.request("HEAD", "/" + code).status == 410, timeout=10,
               description="expiry")
    for _ in range(5):
        assert server.request("GET", "/" + code).status == 410
    # Counts flushed after the sentinel's include any the 410s had made.
    sentinel = server.create(URL + "/sentinel").json()["code"]
    assert server.request("GET", "/" + sentinel).status == 301
    wait_for_visits(server, sentinel, 1)
    assert read_link(server, code)["visits"] == 1


# ---- visit limits ----

def test_max_visits_shown_and_enforced(server):
    response = server.create(URL, max_visits=3)
    assert response.status == 201, response
    link = response.json()
    assert link["max_visits"] == 3, link
    for i in range(3):
        redirect = server.request("GET", "/" + link["code"])
        assert redirect.status == 301, (i, redirect)
    expect_error(server.request("GET", "/" + link["code"]), 410, "link_exhausted")
    expect_error(server.request("GET", "/" + link["code"]), 410, "link_exhausted")


@pytest.mark.parametrize("value", [0, -1, -2 ** 63, 1.5, "5", True, [5]])
def test_invalid_max_visits_rejected(server, value):
    before = links_count(server)
    expect_error(server.create(URL, max_visits=value), 400, "invalid_max_visits")
    assert links_count(server) == before


def test_head_does_not_use_visits(server):
    code = server.create(URL, max_visits=2).json()["code"]
    for _ in range(10):
        head = server.request("HEAD", "/" + code)
        assert head.status == 301, head
        assert head.header("location") == URL, head
    assert server.request("GET", "/" + code).status == 301
    assert server.request("GET", "/" + code).status == 301
    expect_error(server.request("GET", "/" + code), 410, "link_exhausted")
    head = server.request("HEAD", "/" + code)
    assert head.status == 410, head


def exhaust_concurrently(server, code, count=40):
    """Sends count simultaneous GETs, one connection each, and returns the
    sorted statuses."""
    responses = send_at_once(server.port, get_requests([code] * count))
    for response in responses:
        if response.status == 410:
            assert error_code(response) == "link_exhausted", response
    return sorted(response.status for response in responses)


def test_max_visits_exact_under_concurrency(make_server):
    server = make_server(["--threads", "2", "--workers", "4", "--flush-interval", "0.2"]).start()
    for round_number in range(3):
        code = server.create(URL + "/%d" % round_number, max_visits=5).json()["code"]
        statuses = exhaust_concurrently(server, code)
        assert statuses == [301] * 5 + [410] * 35, (round_number, statuses)
        wait_for_visits(server, code, 5)


def test_max_visits_exact_on_cold_cache(make_server):
    """The first visits after a restart find no counter and no cached link."""
    server = make_server(["--threads", "2", "--workers", "4", "--flush-interval", "0.2"]).start()
    code = server.create(URL, max_visits=5).json()["code"]
    assert server.stop() == 0
    server.start()
    assert exhaust_concurrently(server, code) == [301] * 5 + [410] * 35


def test_max_visits_exact_with_pipelining(make_server):
    server = make_server(["--threads", "2", "--workers", "4"]).start()
    code = server.create(URL, max_visits=50).json()["code"]
    responses = run_parallel(server.port, get_requests([code] * 160), connections=8, window=20)
    statuses = [response.status for response in responses]
    assert statuses.count(301) == 50, statuses
    assert statuses.count(410) == 110, statuses


def test_max_visits_exact_when_cache_evicts(make_server):
    """With a 64 KB cache the limited links are evicted and read again."""
    server = make_server(["--threads", "2", "--workers", "4", "--cache-size", "64K",
                          "--flush-interval", "0.2"]).start()
    limited = [server.create(URL + "/limited/%d" % i, max_visits=7).json()["code"]
               for i in range(5)]
    fillers = [server.create("https://example.org/%d/%s" % (i, "f" * 2000)).json()["code"]
               for i in range(100)]
    codes = limited * 30 + fillers * 2
    responses = run_parallel(server.port, get_requests(codes), connections=16, window=8)

    for code in limited:
        statuses = [r.status for c, r in zip(codes, responses) if c == code]
        assert statuses.count(301) == 7, (code, statuses)
        assert statuses.count(410) == 23, (code, statuses)
    assert all(r.status == 301 for c, r in zip(codes, responses) if c in fillers)
    for code in limited:
        wait_for_visits(server, code, 7)


def test_max_visits_kept_across_restart(make_server):
    server = make_server(["--threads", "2", "--flush-interval", "0.2"]).start()
    code = server.create(URL, max_visits=5).json()["code"]
    for _ in range(3):
        assert server.request("GET", "/" + code).status == 301
    # The stop flushes the three visits, so no flush tick is needed.
    assert server.stop() == 0
    server.start()
    assert read_link(server, code)["visits"] == 3
    assert exhaust_concurrently(server, code) == [301] * 2 + [410] * 38

    assert server.stop() == 0
    server.start()
    expect_error(server.request("GET", "/" + code), 410, "link_exhausted")
    assert read_link(server, code)["visits"] == 5


def test_sigint_also_flushes_visit_limit(make_server):
    import signal

    server = make_server(["--flush-interval", "60"]).start()
    code = server.create(URL, max_visits=2).json()["code"]
    assert server.request("GET", "/" + code).status == 301
    assert server.stop(signal.SIGINT) == 0
    server.start()
    assert server.request("GET", "/" + code).status == 301
    expect_error(server.request("GET", "/" + code), 410, "link_exhausted")


# ---- redirect status and caching ----

def test_cache_max_age_per_link(server):
    for age in (0, 1, 3600, 365 * 24 * 3600):
        response = server.create(URL + "/%d" % age, cache_max_age=age)
        assert response.status == 201, response
        assert response.json()["cache_max_age"] == age, response
        redirect = server.request("GET", "/" + response.json()["code"])
        assert redirect.header("cache-control") == "private, max-age=%d" % age, redirect


def test_no_cache_control_without_any_max_age(server):
    code = server.create(URL).json()["code"]
    redirect = server.request("GET", "/" + code)
    assert redirect.status == 301, redirect
    assert redirect.header("cache-control") is None, redirect


def test_global_max_age_read_at_redirect(make_server):
    server = make_server(["--cache-max-age", "60"]).start()
    plain = server.create(URL).json()
    assert plain["cache_max_age"] is None, plain
    own = server.create(URL + "/own", cache_max_age=5).json()
    assert server.request("GET", "/" + plain["code"]).header("cache-control") == \
        "private, max-age=60"
    assert server.request("GET", "/" + own["code"]).header("cache-control") == \
        "private, max-age=5"

    assert server.stop() == 0
    server.start(["--cache-max-age", "120"])
    assert server.request("GET", "/" + plain["code"]).header("cache-control") == \
        "private, max-age=120"
    assert server.request("GET", "/" + own["code"]).header("cache-control") == \
        "private, max-age=5"

    assert server.stop() == 0
    server.start(["--cache-max-age", "none"])
    assert server.request("GET", "/" + plain["code"]).header("cache-control") is None
    assert server.request("HEAD", "/" + own["code"]).header("cache-control") == \
        "private, max-age=5"


@pytest.mark.parametrize("value", [-1, 365 * 24 * 3600 + 1, 1.5, "60", True, [1]])
def test_invalid_cache_max_age_rejected(server, value):
    before = links_count(server)
    expect_error(server.create(URL, cache_max_age=value), 400, "invalid_cache_max_age")
    assert links_count(server) == before


def test_link_status_overrides_global_default(make_server):
    server = make_server(["--redirect-status", "307"]).start()
    plain = server.create(URL).json()
    own = server.create(URL + "/own", redirect_status=308).json()
    assert plain["redirect_status"] == 307, plain
    assert own["redirect_status"] == 308, own
    assert server.request("GET", "/" + plain["code"]).status == 307
    assert server.request("GET", "/" + own["code"]).status == 308

    # The default is fixed into each link when it is created.
    assert server.stop() == 0
    server.start(["--redirect-status", "302"])
    assert server.request("GET", "/" + plain["code"]).status == 307
    assert server.request("GET", "/" + own["code"]).status == 308
    assert server.create(URL + "/later").json()["redirect_status"] == 302


def test_all_options_together(server):
    fields = {"alias": "everything", "expires_at": "2031-01-01T00:00:00Z", "max_visits": 2,
              "redirect_status": 302, "cache_max_age": 30}
    response = server.create(URL, **fields)
    assert response.status == 201, response
    link = response.json()
    assert link["code"] == "everything", link
    assert link["expires_at"] == "2031-01-01T00:00:00Z", link
    assert link["max_visits"] == 2, link
    assert link["redirect_status"] == 302, link
    assert link["cache_max_age"] == 30, link
    redirect = server.request("GET", "/everything")
    assert redirect.status == 302, redirect
    assert redirect.header("cache-control") == "private, max-age=30", redirect
    assert server.request("GET", "/everything").status == 302
    expect_error(server.request("GET", "/everything"), 410, "link_exhausted")


# ---- deduplication ----

def test_same_url_deduplicated(server):
    first = server.create(URL)
    again = server.create(URL)
    assert first.status == 201, first
    assert again.status == 200, again
    assert again.json() == first.json(), (first, again)
    assert again.header("location") == "/api/v1/links/" + first.json()["code"], again


def test_dedupe_with_explicit_default_status(server):
    first = server.create(URL).json()
    again = server.create(URL, redirect_status=301)
    assert again.status == 200, again
    assert again.json()["code"] == first["code"], again


@pytest.mark.parametrize("fields", [
    {"redirect_status": 302},
    {"cache_max_age": 60},
    {"cache_max_age": 0},
    {"max_visits": 10},
    {"expires_at": "2031-01-01T00:00:00Z"},
    {"alias": "different"},
])
def test_different_options_make_new_link(server, fields):
    first = server.create(URL).json()
    response = server.create(URL, **fields)
    assert response.status == 201, (fields, response)
    assert response.json()["code"] != first["code"], response


def test_limited_and_expiring_links_never_shared(server):
    for fields in ({"max_visits": 3}, {"expires_at": "2031-01-01T00:00:00Z"}):
        first = server.create(URL, **fields)
        second = server.create(URL, **fields)
        assert first.status == 201, first
        assert second.status == 201, second
        assert first.json()["code"] != second.json()["code"], (first, second)


def test_dedupe_ignores_deleted_link(server):
    first = server.create(URL).json()
    assert server.request("DELETE", "/api/v1/links/" + first["code"], None, ADMIN).status == 204
    again = server.create(URL)
    assert again.status == 201, again
    assert again.json()["code"] != first["code"], again
    assert server.request("GET", "/" + again.json()["code"]).status == 301


def test_dedupe_compares_stored_url_bytes(server):
    first = server.create("https://example.org/Path").json()
    for url in ("https://example.org/path", "https://example.org/Path/",
                "https://example.org/Path?", "https://example.org/Path#"):
        response = server.create(url)
        assert response.status == 201, (url, response)
        assert response.json()["code"] != first["code"], (url, response)


def test_dedupe_survives_restart(server):
    first = server.create(URL).json()
    assert server.stop() == 0
    server.start()
    again = server.create(URL)
    assert again.status == 200, again
    assert again.json()["code"] == first["code"], again


def test_concurrent_identical_creates_one_link(make_server):
    server = make_server(["--threads", "2"]).start()
    before = links_count(server)
    responses = send_at_once(server.port, [create_request(URL)] * 20)

    statuses = sorted(response.status for response in responses)
    assert statuses == [200] * 19 + [201], responses
    codes = {response.json()["code"] for response in responses}
    assert len(codes) == 1, codes
    assert links_count(server) == before + 1


def test_rejected_creates_store_nothing(server):
    before = list_all_codes(server)
    bad = [
        {"url": URL, "alias": "api"},
        {"url": URL, "alias": "bad alias"},
        {"url": URL, "expires_at": "2000-01-01T00:00:00Z"},
        {"url": URL, "max_visits": 0},
        {"url": URL, "cache_max_age": -5},
        {"url": URL, "redirect_status": 303},
        {"url": "ftp://example.org/", "alias": "ftp-link"},
        {"url": URL, "alias": "extra", "colour": "red"},
    ]
    for fields in bad:
        response = server.request("POST", "/api/v1/links", fields)
        assert response.status == 400, (fields, response)
        error_code(response)
    assert list_all_codes(server) == before
    for alias in ("ftp-link", "extra"):
        assert server.request("GET", "/" + alias).status == 404, alias
    # An alias from a rejected request is still free.
    assert server.create(URL, alias="extra").status == 201

