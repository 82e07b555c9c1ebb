"""Rate limits against the real binary: anonymous creates per client
address, API requests per key, redirects per client, and which
X-Forwarded-For addresses count.

Each test sets its own limits with a refill so slow (0.001 per second) that
no token comes back while it runs, unless the test checks the refill.
"""

from shortd import ADMIN_KEY, build_request, error_code
from support import (ADMIN, bearer, create_key, expect_error, list_all_codes, send_at_once,
                     wait_for_visits, wait_until)
from support import no_sanitizer_report  # noqa: F401 (an autouse fixture)

URL = "https://example.org/limits"
SLOW = "0.001"


def anonymous_server(make_server, burst, extra=()):
    return make_server(["--anonymous-burst", str(burst), "--anonymous-rate", SLOW]
                       + list(extra)).start()


def assert_rate_limited(response, limit):
    expect_error(response, 429, "rate_limited")
    assert int(response.header("retry-after")) >= 1, response
    assert response.header("ratelimit-limit") == str(limit), response
    assert response.header("ratelimit-remaining") == "0", response
    assert int(response.header("ratelimit-reset")) >= 1, response


def create_from(server, address, url=URL):
    return server.request("POST", "/api/v1/links", {"url": url}, {"X-Forwarded-For": address})


def test_anonymous_creates_limited_per_address(make_server):
    server = anonymous_server(make_server, 3)
    for index in range(3):
        response = server.create(URL + "/%d" % index)
        assert response.status == 201, response
        assert response.header("ratelimit-limit") == "3", response
        assert response.header("ratelimit-remaining") == str(2 - index), response
        assert int(response.header("ratelimit-reset")) >= 1, response
    stored = list_all_codes(server)

    for index in range(3):
        assert_rate_limited(server.create(URL + "/over/%d" % index), 3)
    assert list_all_codes(server) == stored


def test_deduplicated_create_also_takes_token(make_server):
    server = anonymous_server(make_server, 2)
    assert server.create(URL).status == 201
    assert server.create(URL).status == 200
    assert_rate_limited(server.create(URL), 2)


def test_anonymous_limit_refills(make_server):
    server = make_server(["--anonymous-burst", "1", "--anonymous-rate", "5"]).start()
    assert server.create(URL + "/first").status == 201
    assert_rate_limited(server.create(URL + "/second"), 1)
    # Five tokens a second: one is back within a fraction of a second.
    wait_until(lambda: server.create(URL + "/later").status == 201, timeout=5, interval=0.1,
               description="a refilled token")


def test_keys_and_admin_skip_anonymous_limit(make_server):
    server = anonymous_server(make_server, 1)
    key = create_key(server, "k", burst=100)["key"]
    assert server.create(URL + "/anonymous").status == 201
    assert_rate_limited(server.create(URL + "/anonymous2"), 1)

    for index in range(5):
        response = server.create(URL + "/key/%d" % index, key=key)
        assert response.status == 201, response
        admin = server.create(URL + "/admin/%d" % index, key=ADMIN_KEY)
        assert admin.status == 201, admin
    # Reads are not creates: anonymous reads are not limited.
    code = server.create(URL + "/k", key=ADMIN_KEY).json()["code"]
    for _ in range(5):
        assert server.request("GET", "/api/v1/links/" + code).status == 200


def test_anonymous_create_can_be_disabled(make_server):
    server = make_server(["--anonymous-create", "false"]).start()
    before = list_all_codes(server)
    expect_error(server.create(URL), 401, "missing_key")
    assert list_all_codes(server) == before
    assert server.create(URL, key=ADMIN_KEY).status == 201


def test_forwarded_for_ignored_without_trusted_proxy(make_server):
    server = anonymous_server(make_server, 1)
    assert create_from(server, "203.0.113.1").status == 201
    assert_rate_limited(create_from(server, "203.0.113.2"), 1)
    assert_rate_limited(create_from(server, "2001:db8::1"), 1)


def test_forwarded_for_from_trusted_proxy_splits_buckets(make_server):
    server = anonymous_server(make_server, 1, ["--trusted-proxy", "127.0.0.1/32"])
    assert create_from(server, "203.0.113.1", URL + "/a").status == 201
    assert_rate_limited(create_from(server, "203.0.113.1", URL + "/b"), 1)
    assert create_from(server, "203.0.113.2", URL + "/c").status == 201
    assert create_from(server, "198.51.100.7", URL + "/d").status == 201
    # The peer itself still has its own bucket.
    assert server.create(URL + "/e").status == 201
    assert_rate_limited(server.create(URL + "/f"), 1)


def test_rightmost_untrusted_address_is_client(make_server):
    server = anonymous_server(make_server, 1,
                              ["--trusted-proxy", "127.0.0.1/32, 10.0.0.0/8"])
    assert create_from(server, "203.0.113.9", URL + "/a").status == 201
    # A client may put anything on the left, and the proxy appends what it saw.
    assert_rate_limited(create_from(server, "192.0.2.1, 203.0.113.9", URL + "/b"), 1)
    assert_rate_limited(create_from(server, "203.0.113.9, 10.1.2.3", URL + "/c"), 1)
    assert create_from(server, "203.0.113.9, 192.0.2.50, 10.1.2.3", URL + "/d").status == 201

    # With two X-Forwarded-For fields the later one contains the newest hops.
    raw = build_request("POST", "/api/v1/links", {"url": URL + "/e"},
                        {"X-Forwarded-For": "192.0.2.77"})
    raw = raw.replace(b"Content-Type", b"X-Forwarded-For: 203.0.113.9, 10.0.0.1\r\nContent-Type")
    with server.connect() as client:
        client.send(raw)
        assert_rate_limited(client.read_response(), 1)


def test_ipv6_clients_share_bucket_per_64(make_server):
    server = anonymous_server(make_server, 1, ["--trusted-proxy", "127.0.0.1/32"])
    assert create_from(server, "2001:db8:1:2::1", URL + "/a").status == 201
    assert_rate_limited(create_from(server, "2001:db8:1:2:ffff:ffff:ffff:ffff", URL + "/b"), 1)
    assert create_from(server, "2001:db8:1:3::1", URL + "/c").status == 201
    # An IPv4-mapped address is the IPv4 client.
    assert create_from(server, "203.0.113.4", URL + "/d").status == 201
    assert_rate_limited(create_from(server, "::ffff:203.0.113.4", URL + "/e"), 1)


def test_malformed_forwarded_for_falls_back_to_peer(make_server):
    server = anonymous_server(make_server, 1, ["--trusted-proxy", "127.0.0.1/32"])
    assert server.create(URL + "/peer").status == 201
    for value in ("not-an-address", "203.0.113.1:8080", "", "203.0.113.300"):
        assert_rate_limited(create_from(server, value, URL + "/" + value), 1)


def test_key_requests_limited_per_key(make_server):
    server = make_server(["--key-burst", "2", "--key-rate", SLOW]).start()
    first = create_key(server, "first")["key"]
    second = create_key(server, "second")["key"]

    assert server.create(URL + "/1", key=first).status == 201
    code = server.create(URL + "/2", key=first).json()["code"]
    assert_rate_limited(server.request("GET", "/api/v1/links/" + code, None, bearer(first)), 2)
    assert_rate_limited(server.create(URL + "/3", key=first), 2)
    assert_rate_limited(server.request("GET", "/api/v1/links", None, bearer(first)), 2)

    # Another key has its own bucket, and the admin is never limited.
    assert server.create(URL + "/4", key=second).status == 201
    for _ in range(20):
        assert server.request("GET", "/api/v1/links/" + code, None, ADMIN).status == 200
    # Redirects do not take key tokens.
    assert server.request("GET", "/" + code).status == 301
    codes = list_all_codes(server)
    assert len(codes) == 3, codes


def test_key_own_burst_and_rate_win(make_server):
    server = make_server(["--key-burst", "1", "--key-rate", SLOW]).start()
    generous = create_key(server, "generous", burst=4, rate=0.001)["key"]
    for index in range(4):
        response = server.create(URL + "/%d" % index, key=generous)
        assert response.status == 201, response
    assert_rate_limited(server.create(URL + "/over", key=generous), 4)

    fast = create_key(server, "fast", burst=1, rate=20)["key"]
    assert server.create(URL + "/fast1", key=fast).status == 201
    assert_rate_limited(server.create(URL + "/fast2", key=fast), 1)
    wait_until(lambda: server.create(URL + "/fast3", key=fast).status == 201, timeout=5,
               interval=0.1, description="a refilled key token")


def test_key_limits_survive_restart(make_server):
    server = make_server(["--key-burst", "50", "--key-rate", SLOW]).start()
    key = create_key(server, "small", burst=2, rate=0.001)["key"]
    assert server.stop() == 0
    server.start()
    for _ in range(2):
        assert server.request("GET", "/api/v1/links", None, bearer(key)).status == 200
    assert_rate_limited(server.request("GET", "/api/v1/links", None, bearer(key)), 2)


def test_key_limit_exact_under_concurrency(make_server):
    server = make_server(["--threads", "2", "--key-burst", "5", "--key-rate", SLOW]).start()
    key = create_key(server, "busy")["key"]
    requests = [build_request("GET", "/api/v1/links", None, bearer(key))] * 20
    responses = send_at_once(server.port, requests)
    statuses = sorted(response.status for response in responses)
    assert statuses == [200] * 5 + [429] * 15, responses
    for response in responses:
        if response.status == 429:
            assert error_code(response) == "rate_limited", response


def test_anonymous_limit_exact_under_concurrency(make_server):
    server = make_server(["--threads", "2", "--anonymous-burst", "5",
                          "--anonymous-rate", SLOW]).start()
    requests = [build_request("POST", "/api/v1/links", {"url": URL + "/%d" % i})
                for i in range(20)]
    responses = send_at_once(server.port, requests)
    statuses = sorted(response.status for response in responses)
    assert statuses == [201] * 5 + [429] * 15, responses
    assert len(list_all_codes(server)) == 5


def test_redirects_unlimited_by_default(make_server):
    server = anonymous_server(make_server, 1)
    code = server.create(URL).json()["code"]
    with server.connect() as client:
        for _ in range(300):
            assert client.request("GET", "/" + code).status == 301


def test_redirect_limit_per_client(make_server):
    server = make_server(["--redirect-rate", SLOW, "--redirect-burst", "3",
                          "--trusted-proxy", "127.0.0.1/32"]).start()
    code = server.create(URL).json()["code"]
    for _ in range(3):
        assert server.request("GET", "/" + code).status == 301
    limited = server.request("GET", "/" + code)
    assert_rate_limited(limited, 3)
    assert limited.header("location") is None, limited
    assert server.request("HEAD", "/" + code).status == 429
    # A client behind the trusted proxy has its own bucket.
    other = server.request("GET", "/" + code, None, {"X-Forwarded-For": "203.0.113.3"})
    assert other.status == 301, other
    # The API is not a redirect.
    assert server.request("GET", "/api/v1/links/" + code).status == 200


def test_rate_limited_redirects_not_counted(make_server):
    server = make_server(["--redirect-rate", SLOW, "--redirect-burst", "2",
                          "--flush-interval", "0.2"]).start()
    code = server.create(URL, max_visits=5).json()["code"]
    statuses = [server.request("GET", "/" + code).status for _ in range(6)]
    assert statuses == [301, 301, 429, 429, 429, 429], statuses
    wait_for_visits(server, code, 2)


def test_invalid_rate_settings_rejected(make_server, tmp_path):
    for args in (["--anonymous-rate", "-1"], ["--anonymous-rate", "fast"],
                 ["--anonymous-burst", "0"], ["--key-rate", "0"], ["--key-burst", "x"],
                 ["--redirect-burst", "0"], ["--trusted-proxy", "10.0.0.0/33"],
                 ["--trusted-proxy", "not-a-range"]):
        server = make_server(list(args), folder=tmp_path)
        try:
            server.start()
        except RuntimeError as error:
            assert "exited with 2" in str(error), (args, str(error))
        else:
            server.kill()
            raise AssertionError("shortd started with %r" % args)
