"""The JSON API and the redirect, driven over HTTP against the real binary."""

import re

from shortd import ADMIN_KEY, build_request, error_code

URL = "https://example.org/docs/page?q=1#top"


def test_create_returns_link_object(server):
    response = server.create(URL)
    assert response.status == 201, response
    link = response.json()
    assert set(link) == {"code", "short_url", "url", "created_at", "expires_at", "max_visits",
                         "visits", "redirect_status", "cache_max_age"}
    assert re.fullmatch(r"[0-9A-Za-z]{7}", link["code"]), link
    assert link["short_url"] == "http://short.test/" + link["code"]
    assert link["url"] == URL
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", link["created_at"]), link
    assert link["expires_at"] is None
    assert link["max_visits"] is None
    assert link["visits"] == 0
    assert link["redirect_status"] == 301
    assert link["cache_max_age"] is None
    assert response.header("location") == "/api/v1/links/" + link["code"]
    assert response.header("content-type") == "application/json; charset=utf-8"


def test_redirect_sends_location(server):
    code = server.create(URL).json()["code"]
    response = server.request("GET", "/" + code)
    assert response.status == 301
    assert response.header("location") == URL
    assert response.header("content-length") == "0"
    assert response.body == b""


def test_redirect_ignores_query_string(server):
    code = server.create(URL).json()["code"]
    response = server.request("GET", "/%s?utm_source=mail" % code)
    assert response.status == 301
    assert response.header("location") == URL


def test_head_redirect_has_no_body(server):
    code = server.create(URL).json()["code"]
    with server.connect() as client:
        response = client.request("HEAD", "/" + code)
        assert response.status == 301
        assert response.header("location") == URL
        # The connection stays usable, which shows no body bytes followed.
        assert client.request("GET", "/" + code).status == 301


def test_head_error_keeps_content_length(server):
    with server.connect() as client:
        response = client.request("HEAD", "/nosuch1")
        assert response.status == 404
        assert int(response.header("content-length")) > 0
        assert client.request("GET", "/healthz").status == 200


def test_redirect_status_per_link(server):
    for status in (301, 302, 307, 308):
        response = server.create(URL, redirect_status=status)
        assert response.status == 201, response
        link = response.json()
        assert link["redirect_status"] == status
        assert server.request("GET", "/" + link["code"]).status == status


def test_redirect_status_default_setting(make_server):
    server = make_server(["--redirect-status", "302"]).start()
    link = server.create(URL).json()
    assert link["redirect_status"] == 302
    assert server.request("GET", "/" + link["code"]).status == 302


def test_invalid_redirect_status_rejected(server):
    for value in (200, 303, "301", 301.5, True):
        response = server.create(URL, redirect_status=value)
        assert response.status == 400, (value, response)
        assert error_code(response) == "invalid_redirect_status"


def test_unknown_code_is_404(server):
    response = server.request("GET", "/zzzzzzz")
    assert response.status == 404
    assert error_code(response) == "not_found"


def test_read_link(server):
    created = server.create(URL).json()
    response = server.request("GET", "/api/v1/links/" + created["code"])
    assert response.status == 200
    assert response.json() == created
    assert response.header("cache-control") == "no-store"


def test_read_unknown_link_is_404(server):
    response = server.request("GET", "/api/v1/links/nosuchcode")
    assert response.status == 404
    assert error_code(response) == "not_found"


def test_delete_needs_admin_key(server):
    code = server.create(URL).json()["code"]

    response = server.request("DELETE", "/api/v1/links/" + code)
    assert response.status == 401
    assert error_code(response) == "missing_key"
    assert response.header("www-authenticate") == "Bearer"

    response = server.request("DELETE", "/api/v1/links/" + code,
                              headers={"Authorization": "Bearer wrong-key-wrong-key"})
    assert response.status == 403
    assert error_code(response) == "invalid_key"

    # Neither attempt changed anything.
    assert server.request("GET", "/" + code).status == 301


def test_delete_then_redirect_is_410(server):
    code = server.create(URL).json()["code"]
    auth = {"Authorization": "Bearer " + ADMIN_KEY}

    assert server.request("DELETE", "/api/v1/links/" + code, headers=auth).status == 204
    response = server.request("GET", "/" + code)
    assert response.status == 410
    assert error_code(response) == "link_gone"
    assert server.request("GET", "/api/v1/links/" + code).status == 410

    again = server.request("DELETE", "/api/v1/links/" + code, headers=auth)
    assert again.status == 410
    missing = server.request("DELETE", "/api/v1/links/nosuch", headers=auth)
    assert missing.status == 404


def test_delete_survives_restart(server):
    code = server.create(URL).json()["code"]
    auth = {"Authorization": "Bearer " + ADMIN_KEY}
    assert server.request("DELETE", "/api/v1/links/" + code, headers=auth).status == 204
    assert server.stop() == 0
    server.start()
    assert server.request("GET", "/" + code).status == 410


def test_create_with_admin_key(server):
    response = server.create(URL, key=ADMIN_KEY)
    assert response.status == 201


def test_create_with_wrong_key_is_403(server):
    response = server.create(URL, key="not-the-admin-key-at-all")
    assert response.status == 403
    assert error_code(response) == "invalid_key"


def test_codes_are_unique_and_unordered(server):
    codes = [server.create("https://example.org/%d" % i).json()["code"] for i in range(50)]
    assert len(set(codes)) == 50
    assert codes != sorted(codes)


def test_bad_json_rejected(server):
    cases = [
        (b"{", "invalid_json"),
        (b"[]", "invalid_json"),
        (b"\"https://example.org\"", "invalid_json"),
        (b"{\"url\": \"https://a.example\", \"url\": \"https://b.example\"}", "invalid_json"),
        (b"{}", "missing_url"),
        (b"{\"url\": null}", "missing_url"),
        (b"{\"url\": 5}", "invalid_url"),
        (b"{\"url\": \"https://example.org\", \"colour\": 1}", "unknown_field"),
        (b"{\"url\": \"\"}", "invalid_url"),
    ]
    for body, code in cases:
        response = server.request("POST", "/api/v1/links", body,
                                  {"Content-Type": "application/json"})
        assert response.status == 400, (body, response)
        assert error_code(response) == code, (body, response)


def test_invalid_urls_rejected(server):
    cases = [
        ("ftp://example.org/file", "unsupported_scheme"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("https://", "invalid_url"),
        ("https://exa mple.org/", "invalid_url"),
        ("https://example.org/a\r\nSet-Cookie: x=1", "invalid_url"),
        ("https://example.org/%zz", "invalid_url"),
        ("https://host:port/", "invalid_url"),
        ("https://*.example.org/", "invalid_host"),
        ("http://short.test/abc", "redirect_loop"),
        ("https://example.org/" + "a" * 8200, "url_too_long"),
    ]
    for url, code in cases:
        response = server.create(url)
        assert response.status == 400, (url, response)
        assert error_code(response) == code, (url, response.body)


def test_internationalised_host_converted(server):
    response = server.create("https://bücher.example/straße?q=ü")
    assert response.status == 201, response
    url = response.json()["url"]
    assert url == "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC"
    code = response.json()["code"]
    assert server.request("GET", "/" + code).header("location") == url


def test_create_needs_json_content_type(server):
    response = server.request("POST", "/api/v1/links", b"{\"url\": \"https://example.org\"}",
                              {"Content-Type": "text/plain"})
    assert response.status == 415
    assert error_code(response) == "unsupported_media_type"

    response = server.request("POST", "/api/v1/links", b"{\"url\": \"https://example.org\"}",
                              {"Content-Type": "application/json; charset=utf-8"})
    assert response.status == 201


def test_create_without_body_is_411(server):
    with server.connect() as client:
        client.send(b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\n\r\n")
        response = client.read_response()
    assert response.status == 411
    assert error_code(response) == "length_required"


def test_create_body_too_large_is_413(make_server):
    server = make_server(["--max-body-size", "16K", "--max-url-length", "4096"]).start()
    body = b"{\"url\": \"https://example.org/" + b"a" * 20000 + b"\"}"
    with server.connect() as client:
        client.send(build_request("POST", "/api/v1/links", body,
                                  {"Content-Type": "application/json"}))
        response = client.read_response()
        assert response.status == 413
        assert error_code(response) == "body_too_large"
        assert response.header("connection") == "close"


def test_chunked_create(server):
    body = b"{\"url\": \"https://example.org/chunked\"}"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                       for i in range(0, len(body), 7)) + b"0\r\n\r\n"
    with server.connect() as client:
        client.send(b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    b"Content-Type: application/json\r\n\r\n" + chunked)
        response = client.read_response()
    assert response.status == 201, response
    assert response.json()["url"] == "https://example.org/chunked"


def test_expect_continue(server):
    body = b"{\"url\": \"https://example.org/continue\"}"
    with server.connect() as client:
        client.send(b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        interim = client._read_until(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        client.send(body)
        response = client.read_response()
    assert response.status == 201


def test_method_not_allowed_lists_allow(server):
    cases = [
        ("PUT", "/abc", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
        ("PUT", "/api/v1/links", "GET, HEAD, POST"),
        ("PATCH", "/api/v1/links/abc", "GET, HEAD, DELETE"),
    ]
    for method, path, allow in cases:
        response = server.request(method, path)
        assert response.status == 405, (method, path, response)
        assert response.header("allow") == allow
        assert error_code(response) == "method_not_allowed"


def test_unknown_paths_are_404(server):
    for path in ("/", "/api", "/api/v2/links", "/a/b", "/abc/", "/%41bc", "/metricsx/y"):
        response = server.request("GET", path)
        assert response.status == 404, (path, response)
        assert error_code(response) == "not_found"


def test_health_and_readiness(server):
    response = server.request("GET", "/healthz")
    assert response.status == 200
    assert response.json() == {"status": "ok"}
    response = server.request("GET", "/readyz")
    assert response.status == 200
    assert response.json() == {"status": "ready"}


def test_links_survive_restart(server):
    links = [server.create("https://example.org/restart/%d" % i).json() for i in range(20)]
    assert server.stop() == 0
    server.start()
    for link in links:
        response = server.request("GET", "/" + link["code"])
        assert response.status == 301
        assert response.header("location") == link["url"]


def test_code_key_kept_across_restarts(server):
    first = server.create("https://example.org/one").json()["code"]
    assert server.stop() == 0
    server.start()
    second = server.create("https://example.org/two").json()["code"]
    assert first != second
    assert server.request("GET", "/" + first).status == 301
