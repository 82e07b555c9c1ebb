"""HTTP/1.1 framing: persistence, pipelining, limits, malformed requests and
timeouts, against the real binary."""

import socket
import time

from shortd import Client, error_code, get_requests, pipelined

URL = "https://example.org/http"


def test_keep_alive_serves_many_requests(server):
    code = server.create(URL).json()["code"]
    with server.connect() as client:
        for _ in range(100):
            response = client.request("GET", "/" + code)
            assert response.status == 301
            assert response.header("connection") is None


def test_pipelined_requests_answered_in_order(server):
    codes = [server.create("%s/%d" % (URL, i)).json()["code"] for i in range(20)]
    requests = get_requests(codes * 10)
    responses = pipelined(server.port, requests, window=200)
    assert len(responses) == 200
    for index, response in enumerate(responses):
        assert response.status == 301
        assert response.header("location") == "%s/%d" % (URL, index % 20)


def test_pipeline_mixing_misses_and_creates(server):
    """Deferred answers (store reads, commits) keep the pipeline's order."""
    code = server.create(URL).json()["code"]
    def create(n):
        body = b"{\"url\": \"https://example.org/pipelined/%d\"}" % n
        return (b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    get = ("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % code).encode()
    unknown = b"GET /unknown1 HTTP/1.1\r\nHost: x\r\n\r\n"
    read = ("GET /api/v1/links/%s HTTP/1.1\r\nHost: x\r\n\r\n" % code).encode()
    requests = [get, create(1), unknown, read, get, create(2), get]
    responses = pipelined(server.port, requests, window=len(requests))
    assert [r.status for r in responses] == [301, 201, 404, 200, 301, 201, 301]


def test_connection_close_honoured(server):
    with server.connect() as client:
        client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = client.read_response()
        assert response.status == 200
        assert response.header("connection") == "close"
        assert client.closed_by_server()


def test_http10_closes_unless_keep_alive(server):
    with server.connect() as client:
        client.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert client.read_response().status == 200
        assert client.closed_by_server()

    with server.connect() as client:
        client.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = client.read_response()
        assert response.status == 200
        assert response.header("connection") == "keep-alive"
        assert client.request("GET", "/healthz").status == 200


MALFORMED = [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     400, "conflicting_framing"),
    (b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
     400, None),
    (b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, None),
    (b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400, None),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\r\n  folded\r\n\r\n", 400, None),
    (b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400, None),
    (b"GET /healthz HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400, None),
    (b"GET /healthz HTTP/1.1\nHost: x\n\n", 400, None),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400, None),
    (b"GET /he lthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, None),
    (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "missing_host"),
    (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "duplicate_host"),
    (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, None),
    (b"GET /healthz FOO/1.1\r\nHost: x\r\n\r\n", 400, None),
    (b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     501, None),
    (b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     400, None),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", 417, None),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, None),
]


def test_malformed_requests_get_error_and_close(server):
    for raw, status, code in MALFORMED:
        with server.connect() as client:
            client.send(raw)
            response = client.read_response()
            assert response.status == status, (raw, response)
            if code is not None:
                assert error_code(response) == code, (raw, response)
            else:
                error_code(response)
            assert response.header("connection") == "close", raw
            assert client.closed_by_server(), raw
    # None of them hurt the server.
    assert server.request("GET", "/healthz").status == 200


def test_smuggled_request_is_not_answered(server):
    """A second request hidden in a body with conflicting framing must not run."""
    with server.connect() as client:
        client.send(b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\n"
                    b"Host: x\r\n\r\n")
        assert client.read_response().status == 400
        assert client.closed_by_server()
        assert b"HTTP/1.1 200" not in client.buffer


def test_request_line_too_long_is_414(make_server):
    server = make_server(["--max-request-line", "1K"]).start()
    with server.connect() as client:
        client.send(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        response = client.read_response()
        assert response.status == 414


def test_headers_too_large_is_431(make_server):
    server = make_server(["--max-header-size", "4K", "--max-request-line", "1K"]).start()
    with server.connect() as client:
        client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n")
        assert client.read_response().status == 431
    with server.connect() as client:
        headers = b"".join(b"X-%d: v\r\n" % i for i in range(100))
        client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert client.read_response().status == 431


def test_request_trickled_byte_by_byte(server):
    code = server.create(URL).json()["code"]
    raw = ("GET /%s HTTP/1.1\r\nHost: x\r\nUser-Agent: trickle\r\n\r\n" % code).encode()
    with server.connect() as client:
        for byte in raw:
            client.send(bytes([byte]))
        response = client.read_response()
    assert response.status == 301
    assert response.header("location") == URL


def test_header_timeout_closes_slow_client(make_server):
    server = make_server(["--header-timeout", "0.5"]).start()
    with server.connect() as client:
        client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        response = client.read_response()
        assert response.status == 408
        assert error_code(response) == "request_timeout"
        assert client.closed_by_server()


def test_silent_connection_closed_after_header_timeout(make_server):
    server = make_server(["--header-timeout", "0.5"]).start()
    with server.connect() as client:
        assert client.closed_by_server(timeout=5)
        assert client.buffer == b""


def test_idle_timeout_closes_keep_alive(make_server):
    server = make_server(["--idle-timeout", "0.5"]).start()
    with server.connect() as client:
        assert client.request("GET", "/healthz").status == 200
        started = time.monotonic()
        assert client.closed_by_server(timeout=5)
        assert time.monotonic() - started < 4


def test_connection_limit(make_server):
    server = make_server(["--max-connections", "4", "--threads", "1"]).start()
    clients = [server.connect() for _ in range(4)]
    try:
        for client in clients:
            assert client.request("GET", "/healthz").status == 200
        with server.connect() as extra:
            response = extra.read_response()
            assert response.status == 503
            assert error_code(response) == "too_many_connections"
    finally:
        for client in clients:
            client.close()
    time.sleep(0.2)
    assert server.request("GET", "/healthz").status == 200


def test_client_that_never_reads(server):
    """A client that pipelines without reading is throttled, not buffered forever."""
    code = server.create(URL).json()["code"]
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(2)
    request = ("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % code).encode() * 1000
    sent = 0
    try:
        for _ in range(200):
            sent += sock.send(request)
    except (socket.timeout, BlockingIOError):
        pass
    # The server stopped reading long before it got everything.
    assert sent < 200 * len(request)
    sock.close()
    assert server.request("GET", "/" + code).status == 301


def test_graceful_stop_finishes_in_flight(server):
    code = server.create(URL).json()["code"]
    client = Client(server.port)
    client.send(("GET /%s HTTP/1.1\r\nHost: x\r\n" % code).encode())
    time.sleep(0.2)
    server.process.send_signal(15)
    time.sleep(0.2)
    client.send(b"\r\n")
    response = client.read_response()
    assert response.status == 301
    assert response.header("connection") == "close"
    assert server.process.wait(20) == 0
    client.close()
