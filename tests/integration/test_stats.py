"""Visit counting and GET /api/v1/links/{code}/stats against the real binary.

Visits are counted in memory and flushed every --flush-interval, so the
tests poll the store with a deadline instead of sleeping. Days are UTC. A
test that reads "today" requests a range around it, so a run that crosses
midnight still finds its visits.
"""

import datetime

import pytest

from shortd import Client, build_request, get_requests, run_parallel
from support import (ADMIN, bearer, create_key, expect_error, read_link, utc_today,
                     wait_for_visits)
from support import no_sanitizer_report  # noqa: F401 (an autouse fixture)

URL = "https://example.org/stats"


@pytest.fixture
def fast_flush(make_server):
    return make_server(["--threads", "2", "--flush-interval", "0.2"]).start()


def stats(server, code, query="", headers=None):
    response = server.request("GET", "/api/v1/links/%s/stats%s" % (code, query), None,
                              headers or ADMIN)
    assert response.status == 200, response
    return response.json()


def around_today():
    today = utc_today()
    return "?from=%s&to=%s" % (today - datetime.timedelta(days=1),
                               today + datetime.timedelta(days=1))


def test_get_counts_and_head_does_not(fast_flush):
    server = fast_flush
    code = server.create(URL).json()["code"]
    for _ in range(4):
        assert server.request("GET", "/" + code).status == 301
    for _ in range(6):
        assert server.request("HEAD", "/" + code).status == 301

    # Counts flushed after the sentinel's include any the HEADs had made.
    sentinel = server.create(URL + "/sentinel").json()["code"]
    assert server.request("GET", "/" + sentinel).status == 301
    wait_for_visits(server, sentinel, 1)
    assert read_link(server, code)["visits"] == 4
    assert stats(server, code, around_today())["total"] == 4


def test_visits_from_many_connections_all_counted(fast_flush):
    server = fast_flush
    code = server.create(URL).json()["code"]
    responses = run_parallel(server.port, get_requests([code] * 2000), connections=16)
    assert all(response.status == 301 for response in responses)
    wait_for_visits(server, code, 2000)


def test_burst_of_visits_survives_stop(make_server):
    server = make_server(["--threads", "2", "--flush-interval", "3600"]).start()
    codes = [server.create(URL + "/%d" % i).json()["code"] for i in range(4)]
    responses = run_parallel(server.port, get_requests(codes * 500), connections=16)
    assert all(response.status == 301 for response in responses)
    assert server.stop() == 0
    server.start()
    for code in codes:
        assert read_link(server, code)["visits"] == 500, code


def test_alias_visits_and_stats(fast_flush):
    server = fast_flush
    alias = "Z" * 60 + "-_ok"
    assert server.create(URL, alias=alias).status == 201
    for _ in range(3):
        assert server.request("GET", "/" + alias).status == 301
    wait_for_visits(server, alias, 3)
    assert stats(server, alias, around_today())["total"] == 3


def test_referrer_host_length_limit(fast_flush):
    server = fast_flush
    code = server.create(URL).json()["code"]
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    too_long = longest + "e"
    assert len(longest) == 253
    for host in (longest, too_long):
        response = server.request("GET", "/" + code, None, {"Referer": "https://%s/" % host})
        assert response.status == 301, response
    wait_for_visits(server, code, 2)
    document = stats(server, code, around_today())
    assert document["referrers"] == [{"host": longest, "visits": 1}], document


def test_non_utf8_referrer_does_not_hide_hosts(fast_flush):
    server = fast_flush
    code = server.create(URL).json()["code"]
    raw = build_request("GET", "/" + code).replace(
        b"\r\n\r\n", b"\r\nReferer: http://b\xfcr.example/\r\n\r\n")
    with Client(server.port) as client:
        for _ in range(5):
            client.send(raw)
            assert client.read_response().status == 301
    hosts = ["host%d.example" % index for index in range(10)]
    for host in hosts:
        response = server.request("GET", "/" + code, None, {"Referer": "https://%s/" % host})
        assert response.status == 301, response

    wait_for_visits(server, code, 15)
    document = stats(server, code, around_today())
    # The odd host may be listed in some escaped form or not at all, but it
    # must not take the place of a host that is then missing from the top ten.
    listed = [entry["host"] for entry in document["referrers"]]
    assert len(listed) == 10, document
    for host in hosts[:9]:
        assert host in listed, (host, document)


def test_rejected_redirects_not_counted(fast_flush):
    server = fast_flush
    code = server.create(URL, max_visits=2).json()["code"]
    for _ in range(5):
        server.request("GET", "/" + code)
    deleted = server.create(URL + "/deleted").json()["code"]
    assert server.request("DELETE", "/api/v1/links/" + deleted, None, ADMIN).status == 204
    for _ in range(3):
        assert server.request("GET", "/" + deleted).status == 410

    wait_for_visits(server, code, 2)
    assert stats(server, code, around_today())["total"] == 2
    response = server.request("GET", "/api/v1/links/%s/stats" % deleted, None, ADMIN)
    expect_error(response, 410, "link_gone")


def test_stats_shape_and_referrers(fast_flush):
    server = fast_flush
    code = server.create(URL).json()["code"]
    referers = (["https://News.Example.COM/story/1"] * 3 +
                ["http://news.example.com:8080/other?q=1"] * 2 +
                ["https://user:secret@blog.example.net/post#c"] * 4 +
                ["https://[2001:DB8::1]:443/x"] +
                ["android-app://com.example.app/", "not a url", ""])
    for referer in referers:
        response = server.request("GET", "/" + code, None, {"Referer": referer})
        assert response.status == 301, response
    for _ in range(2):
        assert server.request("GET", "/" + code).status == 301
    total = len(referers) + 2

    wait_for_visits(server, code, total)
    today = utc_today()
    document = stats(server, code, around_today())
    assert set(document) == {"code", "from", "to", "total", "visits", "days", "referrers"}, \
        document
    assert document["code"] == code, document
    assert document["from"] == str(today - datetime.timedelta(days=1)), document
    assert document["to"] == str(today + datetime.timedelta(days=1)), document
    assert document["total"] == total, document
    assert document["visits"] == total, document
    assert sum(day["visits"] for day in document["days"]) == total, document
    for day in document["days"]:
        assert set(day) == {"date", "visits"}, document
    assert document["referrers"] == [
        {"host": "news.example.com", "visits": 5},
        {"host": "blog.example.net", "visits": 4},
        {"host": "[2001:db8::1]", "visits": 1},
    ], document


def test_referrers_limited_to_top_ten(fast_flush):
    server = fast_flush
    code = server.create(URL).json()["code"]
    expected = []
    for index in range(12):
        host = "site%02d.example" % index
        for _ in range(index + 1):
            response = server.request("GET", "/" + code, None,
                                      {"Referer": "https://%s/" % host})
            assert response.status == 301, response
        expected.append({"host": host, "visits": index + 1})
    expected.reverse()

    wait_for_visits(server, code, sum(range(1, 13)))
    document = stats(server, code, around_today())
    assert document["referrers"] == expected[:10], document


def test_default_range_is_last_30_days(fast_flush):
    server = fast_flush
    code = server.create(URL).json()["code"]
    assert server.request("GET", "/" + code).status == 301
    wait_for_visits(server, code, 1)

    document = stats(server, code)
    to = datetime.date.fromisoformat(document["to"])
    start = datetime.date.fromisoformat(document["from"])
    assert (to - start).days == 29, document
    assert to in (utc_today(), utc_today() - datetime.timedelta(days=1)), document

    only_to = stats(server, code, "?to=2026-03-31")
    assert only_to["from"] == "2026-03-02", only_to
    assert only_to["to"] == "2026-03-31", only_to


def test_range_without_visits_keeps_all_time_total(fast_flush):
    server = fast_flush
    code = server.create(URL).json()["code"]
    for _ in range(3):
        server.request("GET", "/" + code, None, {"Referer": "https://ref.example/"})
    wait_for_visits(server, code, 3)

    document = stats(server, code, "?from=2001-01-01&to=2001-12-31")
    assert document["total"] == 0, document
    assert document["visits"] == 3, document
    assert document["days"] == [], document
    assert document["referrers"] == [], document


def test_range_of_366_days_accepted(server):
    code = server.create(URL).json()["code"]
    # 2020 is a leap year, so 2020-01-01 to 2020-12-31 is 366 days.
    for query in ("?from=2020-01-01&to=2020-12-31", "?from=2021-01-01&to=2022-01-01",
                  "?from=2024-02-29&to=2024-02-29"):
        response = server.request("GET", "/api/v1/links/%s/stats%s" % (code, query), None, ADMIN)
        assert response.status == 200, (query, response)


@pytest.mark.parametrize("query, error", [
    ("?from=2026-13-01", "invalid_date"),
    ("?from=2026-02-29", "invalid_date"),
    ("?to=2026-04-31", "invalid_date"),
    ("?from=2026-1-1", "invalid_date"),
    ("?from=20260101", "invalid_date"),
    ("?from=2026-01-01T00:00:00Z", "invalid_date"),
    ("?from=", "invalid_date"),
    ("?to=yesterday", "invalid_date"),
    ("?from=2026-01-02&to=2026-01-01", "invalid_date_range"),
    ("?from=2020-01-01&to=2021-01-01", "invalid_date_range"),
    ("?from=2021-01-01&to=2022-01-02", "invalid_date_range"),
    ("?from=1999-01-01", "invalid_date_range"),
])
def test_invalid_stats_query_rejected(server, query, error):
    code = server.create(URL).json()["code"]
    response = server.request("GET", "/api/v1/links/%s/stats%s" % (code, query), None, ADMIN)
    expect_error(response, 400, error)


def test_stats_of_unknown_link_is_404(server):
    response = server.request("GET", "/api/v1/links/nosuch1/stats", None, ADMIN)
    expect_error(response, 404, "not_found")


def test_stats_method_not_allowed(server):
    code = server.create(URL).json()["code"]
    response = server.request("POST", "/api/v1/links/%s/stats" % code, {}, ADMIN)
    expect_error(response, 405, "method_not_allowed")
    assert response.header("allow") == "GET, HEAD", response


def test_visits_survive_sigterm_restart(make_server):
    # A long flush interval, so only the stop can have written the counts.
    server = make_server(["--threads", "2", "--flush-interval", "3600"]).start()
    code = server.create(URL).json()["code"]
    for _ in range(7):
        assert server.request("GET", "/" + code, None,
                              {"Referer": "https://a.example/"}).status == 301
    assert read_link(server, code)["visits"] == 0
    assert server.stop() == 0

    server.start()
    assert read_link(server, code)["visits"] == 7
    document = stats(server, code, around_today())
    assert document["total"] == 7, document
    assert document["referrers"] == [{"host": "a.example", "visits": 7}], document

    for _ in range(2):
        assert server.request("GET", "/" + code).status == 301
    assert server.stop() == 0
    server.start()
    assert read_link(server, code)["visits"] == 9


def test_stats_ownership(fast_flush):
    server = fast_flush
    owner = create_key(server, "owner")
    other = create_key(server, "other")
    code = server.create(URL, key=owner["key"]).json()["code"]
    assert server.request("GET", "/" + code).status == 301
    wait_for_visits(server, code, 1)

    assert stats(server, code, around_today(), bearer(owner["key"]))["total"] == 1
    response = server.request("GET", "/api/v1/links/%s/stats" % code, None,
                              bearer(other["key"]))
    expect_error(response, 403, "not_owner")

    anonymous_link = server.create(URL + "/anonymous").json()["code"]
    response = server.request("GET", "/api/v1/links/%s/stats" % anonymous_link)
    assert response.status == 200, response
