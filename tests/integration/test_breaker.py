"""Attacks on the real binary: HTTP framing, slow and broken clients, API
input, and the process lifecycle.

Each test states the behaviour it expects. A test that checks for a memory
error fails only under a sanitizer build, because the plain build survives
the error by luck. Run those with SHORTD_BIN=build/asan/shortd, as
`make integration-asan` does, and check_no_sanitizer_report finds the
report in the server's log.
"""

import asyncio
import contextlib
import os
import random
import resource
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from collections import Counter

import pytest

from shortd import (ADMIN_KEY, Client, build_request, create_requests, error_code, get_requests,
                    run_parallel)

URL = "https://example.org/breaker"
AUTH = {"Authorization": "Bearer " + ADMIN_KEY}


# ---- helpers ----

def check_no_sanitizer_report(server):
    log = server.log()
    assert "Sanitizer" not in log, log[-4000:]
    assert "runtime error" not in log, log[-4000:]


def count_links(db):
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as connection:
        return connection.execute("SELECT count(*) FROM links").fetchone()[0]


@contextlib.contextmanager
def store_locked(db):
    """Holds the SQLite write lock, so the writer's next commit waits for it
    (shortd waits up to 5 s for a lock before it fails the batch)."""
    connection = sqlite3.connect(db, timeout=10, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        connection.execute("COMMIT")
        connection.close()


def read_response_or_none(client):
    """Returns the next response, or None when the server closed or reset
    the connection without one."""
    try:
        return client.read_response()
    except (ConnectionError, OSError):
        return None


def create_body(url):
    return build_request("POST", "/api/v1/links", {"url": url})


# ---- problems: each of these fails against the current code ----

def test_lingering_close_after_error_keeps_server_alive(server):
    """A malformed head larger than the read buffer, followed by the client
    shutting down its sending side, makes settle() read the connection after
    linger_read() freed it (heap-use-after-free in conn.c). Reproduce:
    send "GET /he lthz HTTP/1.1\\r\\nHost: x\\r\\nX: " + 100,000 bytes, then
    shutdown(SHUT_WR). The ASan and TSan builds usually die on the second
    attempt."""
    head = b"GET /he lthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100000 + b"\r\n\r\n"
    for _ in range(10):
        if server.process.poll() is not None:
            break
        with contextlib.closing(socket.create_connection(("127.0.0.1", server.port))) as sock:
            sock.sendall(head)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(3)
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
        time.sleep(0.1)

    assert server.process.poll() is None, server.log()[-4000:]
    check_no_sanitizer_report(server)
    assert server.request("GET", "/healthz").status == 200


def test_half_closed_client_closed_after_response(make_server):
    """A client that sends a request and then shuts down its sending side
    gets its response, and then the server should close the connection,
    because no further request can come. When the FIN is already queued
    behind the request, one short read takes the request, clears the
    readable flag and leaves the FIN unread, so the connection stays open
    until --idle-timeout (60 s by default), taking a connection slot.
    Reproduce: send "GET /healthz HTTP/1.1" and shutdown(SHUT_WR) at once.
    The test queues both behind a create that waits for the locked store,
    so that the server reads them together every time."""
    server = make_server(["--idle-timeout", "30"]).start()
    with server.connect() as client:
        with store_locked(server.db):
            client.send(create_body(URL))
            time.sleep(0.2)
            client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            client.sock.shutdown(socket.SHUT_WR)
            time.sleep(0.2)
        assert client.read_response().status == 201
        assert client.read_response().status == 200
        assert client.closed_by_server(timeout=3)


def test_sigterm_closes_connection_with_deferred_response(make_server):
    """SIGTERM while a create waits for the store must still drain that
    connection. Its response should carry "Connection: close", and the
    process should exit within --shutdown-timeout. Today begin_shutdown()
    drains only the connections in a timeout list, and a deferred one is in
    none, so after its response it stays keep-alive and is served past the
    timeout for as long as the client keeps sending. Reproduce: hold the
    SQLite write lock, POST a link, send SIGTERM, release the lock, keep
    sending GETs."""
    server = make_server(["--shutdown-timeout", "1"]).start()
    with Client(server.port) as client:
        with store_locked(server.db):
            client.send(create_body(URL))
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
        response = client.read_response()
        assert response.status == 201, response
        assert response.header("connection") == "close"

        # A client that keeps sending must not keep the process alive.
        deadline = time.monotonic() + 4
        while server.process.poll() is None and time.monotonic() < deadline:
            try:
                client.request("GET", "/healthz")
            except (ConnectionError, OSError):
                break
            time.sleep(0.2)
    try:
        status = server.process.wait(1)
    except subprocess.TimeoutExpired:
        status = None
    assert status == 0, "shortd still runs 5 s after SIGTERM with --shutdown-timeout 1"


def test_chunked_body_in_small_chunks_gets_response(server):
    """A chunked create whose decoded body (60 KB) is under --max-body-size
    (64K) can still have large framing: 1-byte chunks make 360 KB on the
    wire. Such a request is dropped with a TCP reset and no response,
    because read_once() closes a connection whose input buffer passed
    input_limit(). It should get 201, or a JSON 400 or 413 before the
    connection closes."""
    body = b'{"url": "https://example.org/small-chunks"' + b" " * 60000 + b"}"
    framed = b"".join(b"1\r\n%c\r\n" % byte for byte in body) + b"0\r\n\r\n"
    head = (b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    with server.connect() as client:
        try:
            client.send(head + framed)
        except OSError:
            pass  # the server may stop reading, so the response decides
        response = read_response_or_none(client)
    assert response is not None, "connection reset without a response"
    assert response.status in (201, 400, 413), response
    if response.status != 201:
        error_code(response)


def test_asterisk_target_error_is_json(server):
    """"GET * HTTP/1.1" gets 400 with the message
    'The request target "*" is only allowed with OPTIONS.' pasted unescaped
    into the JSON body by send_error(), so the body is not JSON."""
    with server.connect() as client:
        client.send(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")
        response = client.read_response()
    assert response.status == 400
    assert error_code(response) == "invalid_target"


def test_stored_redirect_status_checked_on_read(server):
    """A row whose redirect_status is not 301, 302, 307 or 308 (a corrupt
    page, a hand edit, a later version) reaches the status line unchecked.
    The client sees "HTTP/1.1 0 Unknown", "HTTP/1.1 200 OK" with a
    Location, or 99999 truncated to 34463. Reproduce: UPDATE links SET redirect_status =
    0, restart, GET the code. The read path should send a valid redirect or
    a JSON 503, as it already percent-encodes unsafe stored URLs."""
    codes = [server.create("%s/status/%d" % (URL, i)).json()["code"] for i in range(4)]
    assert server.stop() == 0
    with contextlib.closing(sqlite3.connect(server.db)) as connection:
        for code, value in zip(codes, (200, 0, 99999, -1)):
            connection.execute("UPDATE links SET redirect_status = ? WHERE code = ?",
                               (value, code))
        connection.commit()
    server.start()

    for code in codes:
        response = server.request("GET", "/" + code)
        assert response.status in (301, 302, 307, 308, 503), (code, response)


def test_delete_reaches_second_process_on_same_database(make_server, tmp_path):
    """Two shortd processes may open one SQLite file (start-up even handles
    the race). A link deleted through one keeps redirecting with 301 on the
    other for as long as it stays cached, while that process's API already
    returns 410 for it. Either a second process should be rejected at
    start, or the delete should reach it."""
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = make_server(["--threads", "1"], folder=tmp_path / "first").start()
    second = make_server(["--threads", "1"], folder=tmp_path / "second")
    second.db = first.db
    try:
        second.start()
    except RuntimeError:
        return  # rejecting a second process on the same file is a fix too

    code = first.create(URL).json()["code"]
    assert second.request("GET", "/" + code).status == 301  # now cached there
    assert first.request("DELETE", "/api/v1/links/" + code, headers=AUTH).status == 204

    assert second.request("GET", "/api/v1/links/" + code).status == 410
    assert second.request("GET", "/" + code).status == 410


@pytest.mark.parametrize("base_url, own_link", [
    ("https://bücher.example", "https://xn--bcher-kva.example/x"),
    ("https://bücher.example", "https://bücher.example/x"),
    ("http://user@sho.rt", "https://sho.rt/x"),
    ("sho.rt", "https://sho.rt/x"),
])
def test_base_url_host_always_guarded(make_server, base_url, own_link):
    """--base-url is used as given: its host is cut out with strstr("://")
    and compared as text. An internationalised host, user information or a
    missing scheme leave no usable host, so links to the service itself are
    accepted (redirect loops), and "sho.rt" even yields short_url
    "sho.rt/CODE". shortd should exit with status 2 on a base URL it cannot
    use, or reject links to its host."""
    server = make_server(["--base-url", base_url])
    try:
        server.start()
    except RuntimeError as exc:
        assert "exited with 2" in str(exc), exc
        return
    response = server.create(own_link)
    assert response.status == 400, response
    assert error_code(response) == "redirect_loop"


def test_duplicate_authorization_rejected(server):
    """Two Authorization fields make the key ambiguous, because shortd
    uses the first and a proxy in front may check the last. Duplicate Host
    and Content-Length fields are already rejected for this reason. Today a
    DELETE with "Authorization: Bearer <admin key>" and then
    "Authorization: Bearer wrong" deletes the link. It should get 400 and
    change nothing."""
    code = server.create(URL).json()["code"]
    with server.connect() as client:
        client.send(("DELETE /api/v1/links/%s HTTP/1.1\r\nHost: x\r\n"
                     "Authorization: Bearer %s\r\nAuthorization: Bearer wrong-key-wrong-key\r\n"
                     "\r\n" % (code, ADMIN_KEY)).encode())
        response = client.read_response()
    assert response.status == 400, response
    assert server.request("GET", "/" + code).status == 301


# ---- coverage: attacks that held up ----

CREATE_HEAD = b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

# A create answers 201, or 200 when the same URL was created before (deduplication).
CREATED = (200, 201)

REJECTED_FRAMING = [
    (CREATE_HEAD + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 501),
    (CREATE_HEAD + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     501),
    (CREATE_HEAD + b"Transfer-Encoding: identity\r\n\r\n", 501),
    (CREATE_HEAD.replace(b"HTTP/1.1", b"HTTP/1.0") + b"Transfer-Encoding: chunked\r\n\r\n", 400),
    (CREATE_HEAD + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    (CREATE_HEAD + b"Content-Length: +2\r\n\r\n{}", 400),
    (CREATE_HEAD + b"Content-Length: 2, 2\r\n\r\n{}", 400),
    (CREATE_HEAD + b"Content-Length: 2\r\nContent-Length: 02\r\n\r\n{}", 400),
    (CREATE_HEAD + b"Content-Length: 99999999999999999999\r\n\r\n", 400),
    (CREATE_HEAD + b"Content-Length: 9223372036854775808\r\n\r\n", 400),
    (CREATE_HEAD + b"Content-Length: 9223372036854775807\r\n\r\n", 413),
    (CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n10000000000000002\r\n", 400),
    (CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", 413),
    (CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n", 400),
    (CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n 2\r\n{}\r\n0\r\n\r\n", 400),
    (CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n", 400),
    (CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}0\r\n\r\n", 400),
    (CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n", 400),
    (CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n Folded: x\r\n\r\n",
     400),
    (b"GET /healthz http/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    (b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"\r\n" * 5 + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\tX: y\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX\xff: y\r\n\r\n", 400),
    (b"GET /\xffhealthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: \xff\r\n\r\n", 400),
    (b"GET /healthz#top HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET http://user@evil.example/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET ftp://evil.example/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"CONNECT evil.example HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep alive\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue, x\r\n\r\n", 417),
]


def test_smuggling_forms_rejected_and_closed(server):
    before = count_links(server.db)
    for raw, status in REJECTED_FRAMING:
        with server.connect() as client:
            client.send(raw + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            response = client.read_response()
            assert response.status == status, (raw, response)
            error_code(response)
            assert response.header("connection") == "close", raw
            assert client.closed_by_server(), raw
            assert b"HTTP/1.1 200" not in client.buffer, raw
    assert count_links(server.db) == before
    check_no_sanitizer_report(server)


def test_lenient_framing_forms_accepted(server):
    body = b'{"url": "https://example.org/framing"}'
    chunked_ext = (b"5;name=value;quoted=\"a b\"\r\n" + body[:5] + b"\r\n"
                   + b"%x\r\n" % (len(body) - 5) + body[5:] + b"\r\n0;last\r\nTrailer-X: 1\r\n\r\n")
    accepted = [
        (CREATE_HEAD + b"Content-Length: 00%d\r\n\r\n" % len(body) + body, CREATED),
        (CREATE_HEAD + b"Transfer-Encoding:  Chunked \r\n\r\n" + chunked_ext, CREATED),
        (b"\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"GET http://short.test/healthz HTTP/1.1\r\nHost: other\r\n\r\n", 200),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: \xff\xfe\x80 obs-text\r\n\r\n", 200),
        (b"GET /healthz HTTP/1.0\r\n\r\n", 200),
        (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ]
    for raw, status in accepted:
        with server.connect() as client:
            client.send(raw)
            response = client.read_response()
            assert response.status in status if status == CREATED else response.status == status, (
                raw, response)

    # A GET with a body: the body is skipped, not read as the next request.
    hidden = b"GET /nosuch HTTP/1.1\r\nHost: x\r\n\r\n"
    with server.connect() as client:
        client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" % (len(hidden), hidden))
        assert client.read_response().status == 200
        assert client.read_response().status == 200


def test_limits_hold_at_exact_sizes(server):
    """Checks the default limits (request line 8K with CRLF, head 16K, 64
    fields, body 64K) and that one byte more is rejected."""
    def status_of(raw):
        with server.connect() as client:
            client.send(raw)
            return client.read_response().status

    fixed = len(b"GET / HTTP/1.1\r\n")
    for length, status in ((8192, 404), (8193, 414)):
        line = b"GET /" + b"a" * (length - fixed) + b" HTTP/1.1\r\n"
        assert status_of(line + b"Host: x\r\n\r\n") == status, length

    start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: "
    for length, status in ((16384, 200), (16385, 431)):
        head = start + b"v" * (length - len(start) - 4) + b"\r\n\r\n"
        assert status_of(head) == status, length

    for count, status in ((64, 200), (65, 431)):
        fields = b"".join(b"X-%d: v\r\n" % i for i in range(count - 1))
        assert status_of(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n") == status

    prefix = b'{"url": "https://example.org/limit"'
    body = prefix + b" " * (65536 - len(prefix) - 1) + b"}"
    assert status_of(CREATE_HEAD + b"Content-Length: 65536\r\n\r\n" + body) in CREATED
    assert status_of(CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n10000\r\n" + body
                     + b"\r\n0\r\n\r\n") in CREATED
    # Only the heads are sent, because the 413 comes before any body byte.
    assert status_of(CREATE_HEAD + b"Content-Length: 65537\r\n\r\n") == 413
    assert status_of(CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n10001\r\n") == 413


def test_expect_continue_variants(server):
    body = b'{"url": "https://example.org/continue"}'
    head = CREATE_HEAD + b"Expect: 100-continue\r\n"
    with server.connect() as client:
        client.send(head + b"Transfer-Encoding: chunked\r\n\r\n")
        assert client._read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
        client.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        assert client.read_response().status in CREATED

    with server.connect() as client:
        client.send(head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        response = client.read_response()
        assert response.status in CREATED
        assert not client.buffer  # no late 100 Continue

    with server.connect() as client:
        client.send(head + b"Content-Length: 70000\r\n\r\n")
        assert client._read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 413")


def test_json_oddities_rejected_with_error_shape(server):
    cases = [
        (b"", "invalid_json"),
        (b"null", "invalid_json"),
        (b'\xef\xbb\xbf{"url": "https://example.org/bom"}', "invalid_json"),
        (b'{"url": "https://example.org/"} x', "invalid_json"),
        (b'{"url": "https://example.org/"}{}', "invalid_json"),
        (b'{"url": "https://example.org/\\u0000"}', "invalid_json"),
        (b'{"url": "https://example.org/\xff"}', "invalid_json"),
        (b'{"url": "https://example.org/\xc0\xaf"}', "invalid_json"),
        (b'{"url": "https://example.org/\\ud800"}', "invalid_json"),
        (b'{"url\\u0000x": "https://example.org/"}', "invalid_json"),
        (b'{"url": "https://example.org/", "redirect_status": 1e400}', "invalid_json"),
        (b'{"url": "https://example.org/", "redirect_status": 99999999999999999999}',
         "invalid_json"),
        (b'{"url": "https://example.org/", "redirect_status": 301.0}', "invalid_redirect_status"),
        (b'{"url": "https://example.org/", "redirect_status": -301}', "invalid_redirect_status"),
        (b'{"url": ["https://example.org/"]}', "invalid_url"),
        (b'{"url": {"href": "https://example.org/"}}', "invalid_url"),
        (b'{"url": "https://example.org/", "x": ' + b"[" * 30000 + b"]" * 30000 + b"}",
         "invalid_json"),
        (b'{"URL": "https://example.org/"}', "unknown_field"),
        (b'{"url": "https://example.org/", "colour": "mine"}', "unknown_field"),
        (b'{"' + b"k" * 63 + "\u00e9".encode() + b'": 1, "url": "https://example.org/"}',
         "unknown_field"),
        (b'{"url": "https://example.org/\\r\\nSet-Cookie: a=1"}', "invalid_url"),
        (b"{'url': 'https://example.org/'}", "invalid_json"),
        (b'{"url": "https://example.org/",}', "invalid_json"),
    ]
    before = count_links(server.db)
    for body, code in cases:
        response = server.request("POST", "/api/v1/links", body,
                                  {"Content-Type": "application/json"})
        assert response.status == 400, (body[:80], response)
        assert error_code(response) == code, (body[:80], response)
    assert count_links(server.db) == before


def test_own_host_in_disguise_is_redirect_loop(server):
    for url in ["http://SHORT.TEST/x", "http://short.test./x", "http://%73hort.test/x",
                "http://short%2Etest/x", "http://ｓｈｏｒｔ.test/x", "http://short。test/x",
                "http://sho\u00adrt.test/x", "http://short\u200b.test/x", "http://ſhort.test/x",
                "http://short.test%E3%80%82/x", "https://short.test:8443/x",
                "http://short.test:/x"]:
        response = server.create(url)
        assert response.status == 400, (url, response)
        assert error_code(response) == "redirect_loop", (url, response)


def test_url_tricks(server):
    cases = [
        ("https://user@example.org/", 400), ("https://:pw@example.org/", 400),
        ("https://example.org@/", 400), ("https://[::1%25eth0]/", 400), ("https://[v1.x]/", 400),
        ("https://127.0.0.1:65536/", 400), ("https://1.2.3.04/", 400), ("https://0x7f.1/", 400),
        ("https://2130706433/", 400), ("https://exa%00mple.org/", 400), ("https://a..b/", 400),
        ("https://" + "a" * 64 + ".org/", 400), ("https://[::1]x/", 400), ("https://[]/", 400),
        ("https://example.org/\u0085", 400), ("https://example.org/\ufeff", 400),
        ("https://example.org\t/", 400), ("https:///example.org", 400),
        ("https://example.org/" + "a" * 8173, 400),
        ("https://example.org/" + "a" * 8172, 201),
        ("https://[::ffff:127.0.0.1]:8080/", 201), ("https://127.0.0.1:65535/", 201),
        ("https://example.org/@x", 201), ("https://example.org/#a#b", 201),
        ("https://аpple.com/", 201), ("https://例え.テスト/", 201),
    ]
    for url, status in cases:
        response = server.create(url)
        assert response.status == status, (url[:80], response)
        if status == 201:
            link = response.json()
            redirect = server.request("GET", "/" + link["code"])
            assert redirect.header("location") == link["url"], url[:80]
        else:
            error_code(response)

    # Bytes outside the URI character set never reach a header.
    link = server.create("https://example.org/<\"'`{|}\\^>\u202e").json()
    location = server.request("GET", "/" + link["code"]).header("location")
    assert location == "https://example.org/%3C%22'%60%7B%7C%7D%5C%5E%3E%E2%80%AE"


def test_odd_paths_are_not_links(server):
    for path in ["/" + "a" * 64, "/" + "a" * 65, "/API", "/Healthz", "/METRICS", "/Static",
                 "/%61bc", "/abc%2F", "/abc/", "//abc", "/abc;x", "/abc.", "/abc%00",
                 "/api/v1/links/" + "a" * 65, "/api/v1/links/%61bc", "/api/v1/links//abc",
                 "/api/v1/links/abc/", "/api/v1/links/../healthz", "/./healthz", "/healthz/"]:
        response = server.request("GET", path)
        assert response.status == 404, (path, response)
        assert error_code(response) == "not_found", path


def test_delete_with_malformed_authorization(server):
    code = server.create(URL).json()["code"]
    cases = [
        ("Bearer", 401), ("Bearer ", 401), ("Basic " + ADMIN_KEY, 401), ("bearer", 401),
        ("Bearer\t" + ADMIN_KEY, 401), ("Bearer " + ADMIN_KEY[:-1], 403),
        ("Bearer " + ADMIN_KEY + "x", 403), ("Bearer " + "k" * 15000, 403),
        ("Bearer \xff\xfe", 403), ("Bearer " + ADMIN_KEY.upper(), 403),
    ]
    for value, status in cases:
        with server.connect() as client:
            client.send(("DELETE /api/v1/links/%s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n"
                         % (code, value)).encode("latin-1"))
            response = client.read_response()
        assert response.status == status, (value[:40], response)
        error_code(response)
    assert server.request("GET", "/" + code).status == 301
    assert "k" * 100 not in server.log()
    assert ADMIN_KEY not in server.log()


def test_rejected_creates_change_nothing(server):
    before = count_links(server.db)
    body = {"url": "https://example.org/rejected"}
    rejected = [
        build_request("POST", "/api/v1/links", body,
                      {"Authorization": "Bearer not-the-key-at-all"}),
        build_request("POST", "/api/v1/links", b'{"url": "https://example.org/rejected"}',
                      {"Content-Type": "text/plain"}),
        build_request("POST", "/api/v1/links", {"url": "http://short.test/loop"}),
        CREATE_HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"0\r\n\r\n" + create_body("https://example.org/smuggled"),
    ]
    for raw in rejected:
        with server.connect() as client:
            client.send(raw)
            assert client.read_response().status >= 400

    # Nothing after a request with "Connection: close" is processed.
    with server.connect() as client:
        client.send(build_request("GET", "/healthz", headers={"Connection": "close"})
                    + create_body("https://example.org/after-close"))
        assert client.read_response().status == 200
        assert client.closed_by_server()
    assert count_links(server.db) == before


def test_pipeline_with_deferred_requests_keeps_order(server):
    code = server.create(URL).json()["code"]
    hit = get_requests([code])[0]
    misses = [b"GET /miss%04d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50)]
    requests = [hit] * 250 + [create_body("https://example.org/middle")] + misses + [hit] * 250
    with Client(server.port, timeout=30) as client:
        client.send(b"".join(requests))
        statuses = [client.read_response().status for _ in requests]
    assert statuses == [301] * 250 + [201] + [404] * 50 + [301] * 250


def test_sigterm_during_create_burst_keeps_acknowledged_links(make_server):
    """Every 201 sent before or during a graceful stop is on disk, and the
    process exits 0 once its clients are gone."""
    server = make_server(["--threads", "2", "--shutdown-timeout", "3"]).start()
    acknowledged = []
    unexpected = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def creator(worker):
        n = 0
        try:
            with Client(server.port, timeout=10) as client:
                while not stop.is_set():
                    urls = ["https://example.org/term/%d/%d" % (worker, n + k) for k in range(8)]
                    n += 8
                    client.send(b"".join(create_requests(urls)))
                    for url in urls:
                        response = client.read_response()
                        with lock:
                            if response.status == 201:
                                acknowledged.append((response.json()["code"], url))
                            elif response.status != 503:
                                unexpected[response.status] += 1
                        if response.header("connection") == "close":
                            return
        except (ConnectionError, OSError):
            pass

    threads = [threading.Thread(target=creator, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.8)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join()
    assert server.process.wait(20) == 0
    server.process = None

    assert not unexpected, unexpected
    assert len(acknowledged) > 100
    server.start()
    requests = get_requests([code for code, _ in acknowledged])
    responses = run_parallel(server.port, requests, connections=4, window=64)
    lost = [(code, url, r.status) for (code, url), r in zip(acknowledged, responses)
            if r.status != 301 or r.header("location") != url]
    assert not lost, "%d acknowledged links lost, first: %r" % (len(lost), lost[:3])


def test_file_size_limit_gives_503_then_recovers(make_server, monkeypatch):
    """A write past RLIMIT_FSIZE fails like a full disk: creates get a JSON
    503, reads go on, /readyz reports it, nothing acknowledged is lost."""
    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))

    popen = subprocess.Popen

    def limited_popen(*args, **kwargs):
        kwargs["preexec_fn"] = limit_file_size
        return popen(*args, **kwargs)

    server = make_server(["--threads", "1"])
    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "Popen", limited_popen)
        server.start()

    acknowledged = []
    statuses = Counter()
    with server.connect() as client:
        for i in range(2000):
            url = "https://example.org/full/%d/%s" % (i, "x" * 400)
            response = client.request("POST", "/api/v1/links", {"url": url})
            statuses[response.status] += 1
            if response.status == 201:
                acknowledged.append((response.json()["code"], url))
            else:
                assert response.status == 503, response
                assert error_code(response) == "store_unavailable"
                assert response.header("retry-after") == "1"
            if statuses[503] >= 5:
                break
    assert statuses[503] >= 5, statuses
    assert server.request("GET", "/readyz").status == 503
    assert server.request("GET", "/healthz").status == 200
    assert server.request("GET", "/" + acknowledged[0][0]).status == 301
    assert server.stop() == 0

    server.start()
    assert server.create(URL).status == 201
    responses = run_parallel(server.port, get_requests([code for code, _ in acknowledged]),
                             connections=2)
    assert [r.header("location") for r in responses] == [url for _, url in acknowledged]


def test_garbage_database_rejected_at_start(make_server):
    server = make_server()
    os.makedirs(os.path.dirname(server.db))
    with open(server.db, "wb") as f:
        f.write(random.Random(1).randbytes(100000))
    with pytest.raises(RuntimeError, match="exited with 1"):
        server.start()
    assert "not a database" in server.log()


def test_code_length_change_keeps_links(make_server):
    server = make_server(["--threads", "1"])
    links = {}
    for length in (7, 4, 10, 4):
        server.start(["--code-length", str(length)])
        urls = ["https://example.org/length/%d/%d/%d" % (length, server.runs, i)
                for i in range(100)]
        for response, url in zip(run_parallel(server.port, create_requests(urls), 4), urls):
            code = response.json()["code"]
            assert len(code) == length
            assert code not in links
            links[code] = url
        assert server.stop() == 0
    server.start()
    codes = list(links)
    responses = run_parallel(server.port, get_requests(codes), connections=4)
    assert [r.header("location") for r in responses] == [links[code] for code in codes]


def test_idle_connections_closed_while_others_served(make_server):
    server = make_server(["--header-timeout", "1"]).start()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(1000)]
    try:
        for _ in range(20):
            assert server.request("GET", "/healthz").status == 200
        time.sleep(2)
        closed = 0
        for sock in idle:
            sock.settimeout(0.01)
            try:
                closed += sock.recv(10) == b""
            except socket.timeout:
                pass
            except OSError:
                closed += 1
        assert closed == 1000
    finally:
        for sock in idle:
            sock.close()


def test_misbehaving_clients_leak_no_connection_slot(make_server):
    """Resets during deferred responses, half-closes, abandoned pipelines and
    partial heads must each give their slot back."""
    server = make_server(["--max-connections", "20", "--header-timeout", "1",
                          "--idle-timeout", "1"]).start()
    code = server.create(URL).json()["code"]
    rng = random.Random(7)

    def reset(sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def misbehave(kind):
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            if kind == 0:
                sock.sendall(create_body("https://example.org/reset/%d" % rng.randrange(10**9)))
                reset(sock)
            elif kind == 1:
                sock.sendall(b"GET /miss%04d HTTP/1.1\r\nHost: x\r\n\r\n" % rng.randrange(10000))
                reset(sock)
            elif kind == 2:
                sock.sendall(b"GET /heal")
                sock.close()
            elif kind == 3:
                sock.sendall(get_requests([code])[0] * 300 + create_body("https://example.org/q")
                             + get_requests(["api/v1/links/" + code])[0] * 50)
                sock.close()
            elif kind == 4:
                sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                time.sleep(0.005)
                reset(sock)
            else:
                sock.sendall(CREATE_HEAD + b"Expect: 100-continue\r\nContent-Length: 40\r\n\r\n")
                sock.recv(100)
                reset(sock)
        except OSError:
            pass

    def worker():
        for _ in range(40):
            misbehave(rng.randrange(6))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(2.5)

    clients = [server.connect() for _ in range(20)]
    try:
        statuses = [client.request("GET", "/healthz").status for client in clients]
    finally:
        for client in clients:
            client.close()
    assert statuses == [200] * 20
    check_no_sanitizer_report(server)


def test_deletes_race_redirects_with_tiny_cache(make_server):
    """Once a DELETE got 204, no redirect of that code returns 301."""
    server = make_server(["--cache-size", "64K"]).start()
    urls = ["https://example.org/race/%d" % i for i in range(300)]
    codes = [r.json()["code"] for r in run_parallel(server.port, create_requests(urls), 4)]
    deleted = set()
    deleted_lock = threading.Lock()
    stale = []
    stop = threading.Event()

    def reader(offset):
        with Client(server.port, timeout=20) as client:
            while not stop.is_set():
                for code in codes[offset::4]:
                    with deleted_lock:
                        was_deleted = code in deleted
                    status = client.request("GET", "/" + code).status
                    if status not in (301, 410) or (was_deleted and status != 410):
                        stale.append((code, status))

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for thread in readers:
        thread.start()
    with Client(server.port, timeout=20) as client:
        for code in codes:
            assert client.request("DELETE", "/api/v1/links/" + code, headers=AUTH).status == 204
            with deleted_lock:
                deleted.add(code)
    stop.set()
    for thread in readers:
        thread.join()
    assert not stale, stale[:5]


def test_many_concurrent_clients(server):
    code = server.create(URL).json()["code"]

    async def run():
        connections = [await asyncio.open_connection("127.0.0.1", server.port)
                       for _ in range(1500)]
        for i, (_, writer) in enumerate(connections):
            if i % 5 == 0:
                writer.write(create_body("https://example.org/many/%d" % i))
            elif i % 3 == 0:
                writer.write(b"GET /miss%05d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            else:
                writer.write(get_requests([code])[0])
        lines = [await asyncio.wait_for(reader.readline(), 20) for reader, _ in connections]
        for _, writer in connections:
            writer.close()
        return Counter(line.split(b" ")[1] for line in lines)

    assert asyncio.run(run()) == {b"201": 300, b"404": 400, b"301": 800}
