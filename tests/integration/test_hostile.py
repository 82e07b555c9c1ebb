"""Hostile clients: thousands of connections that idle, trickle, never
read, or send oversized, invalid or ambiguous requests, while a normal
client keeps being served.

Resident memory is read from /proc/PID/status (VmRSS). Its bound is derived
from the server's own limits in conn.c: a connection that reads no
responses holds at most 64 KiB of unsent output before the server stops
processing its requests (OUTPUT_HIGH_WATER), kept in a buffer that grows by
doubling, so up to 128 KiB, plus the unprocessed rest of one 64 KiB read.
A connection with a partial request holds a 4 KiB input buffer. The bound
is the idle server's RSS plus those worst cases for every connection, plus
a fixed allowance for allocator overhead. Sanitizer builds keep freed
memory in quarantine, so the memory bound is checked only on plain builds.
"""

import errno
import multiprocessing
import os
import resource
import selectors
import socket
import threading
import time

import pytest

from shortd import Client, build_request, error_code

HOLDING_KINDS = ("idle", "slowloris", "no_read", "partial_body")
CYCLING_KINDS = ("long_line", "long_header", "bad_bytes", "smuggle")
HOLDING_EACH = 500      # 2,000 connections that stay open until a timeout
CYCLING_EACH = 100      # 400 more that are rejected and reconnect
ATTACK_SECONDS = 12.0
TIMEOUT_SECONDS = 5     # header, body, idle and write timeouts of the server
RECONNECT_DELAY = 0.5   # before a closed hostile connection is opened again
PIPELINE_REQUESTS = 600  # about 90 KB of responses each
# Sanitizer builds run 5 to 15 times slower. With the full pipelines, one
# I/O thread can take longer than the idle timeout to come back to the
# normal client's connection, and then closes it as idle.
SANITIZER_PIPELINE_REQUESTS = 100

KIB = 1024
MIB = 1024 * KIB
NO_READ_BYTES = 128 * KIB + 64 * KIB  # unsent output plus unprocessed input
PARTIAL_BYTES = 4 * KIB + 1 * KIB     # input buffer plus the connection itself
ALLOCATOR_ALLOWANCE = 32 * MIB


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * KIB
    raise AssertionError("no VmRSS for pid %d" % pid)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


TCP_ESTABLISHED = 1  # tcpi_state in struct tcp_info (linux/tcp.h)


def tcp_state(sock):
    """Returns the kernel's TCP state of a socket, without reading from it."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[0]


def is_sanitizer_build(pid):
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    return "libasan" in maps or "libtsan" in maps or "libubsan" in maps


@pytest.fixture
def many_fds():
    """Raises this process's descriptor limit, which shortd inherits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 8192
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip("the hard descriptor limit %d is below %d" % (hard, needed))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Attacker:
    """Opens and drives the hostile connections from one thread with
    non-blocking sockets. Each connection follows its kind; when the server
    closes it, it is opened again after RECONNECT_DELAY."""

    def __init__(self, port, code, pipeline_requests):
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.pipeline = (b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % code.encode()) * pipeline_requests
        self.payloads = {
            "slowloris": b"GET /" + code.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 10000,
            "partial_body": build_request("POST", "/api/v1/links", b"x" * 1000,
                                          {"Content-Type": "application/json"})[:-990],
            "long_line": b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            "long_header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n",
            "bad_bytes": b"GET /\xff\xfe\xc0\xaf\x00abc HTTP/1.1\r\nHost: \x00x\r\n\r\n",
            "smuggle": (b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n"),
        }
        self.conns = {}        # socket -> state dict
        self.waiting = []      # (time, kind) to reconnect
        self.open_peak = 0
        self.closed_by_server = 0
        self.connect_failures = 0

    def open(self, kind):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if kind == "no_read":
            # A small receive window makes the server's sends block soon, so
            # its own output buffer, not the kernel's, fills up.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        result = sock.connect_ex(("127.0.0.1", self.port))
        if result not in (0, errno.EINPROGRESS):
            sock.close()
            self.connect_failures += 1
            self.waiting.append((time.monotonic() + RECONNECT_DELAY, kind))
            return
        state = {"kind": kind, "sent": 0, "next": time.monotonic()}
        self.conns[sock] = state
        events = selectors.EVENT_WRITE
        if kind != "no_read":
            events |= selectors.EVENT_READ
        self.selector.register(sock, events, state)

    def drop(self, sock, by_server=True):
        state = self.conns.pop(sock)
        self.selector.unregister(sock)
        sock.close()
        if by_server:
            self.closed_by_server += 1
            self.waiting.append((time.monotonic() + RECONNECT_DELAY, state["kind"]))

    def payload_for(self, state):
        kind = state["kind"]
        if kind == "idle":
            return b""
        if kind == "no_read":
            return self.pipeline
        if kind == "slowloris":
            # One byte per second.
            now = time.monotonic()
            if now < state["next"]:
                return b""
            state["next"] = now + 1.0
            data = self.payloads[kind]
            return data[state["sent"]:state["sent"] + 1]
        return self.payloads[kind]

    def write(self, sock, state):
        data = self.payload_for(state)
        if state["kind"] != "slowloris":
            data = data[state["sent"]:]
        if not data:
            return
        try:
            state["sent"] += sock.send(data)
        except BlockingIOError:
            pass
        except OSError:
            self.drop(sock)

    def read(self, sock):
        try:
            if not sock.recv(65536):
                self.drop(sock)
        except BlockingIOError:
            pass
        except OSError:
            self.drop(sock)

    def run(self, seconds):
        for kind in HOLDING_KINDS:
            for _ in range(HOLDING_EACH):
                self.open(kind)
        for kind in CYCLING_KINDS:
            for _ in range(CYCLING_EACH):
                self.open(kind)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for key, events in self.selector.select(timeout=0.05):
                sock = key.fileobj
                if sock not in self.conns:
                    continue
                if events & selectors.EVENT_READ:
                    self.read(sock)
                if sock in self.conns and events & selectors.EVENT_WRITE:
                    self.write(sock, key.data)
            # Slowloris connections write on their own schedule, not on readiness.
            for sock, state in list(self.conns.items()):
                if state["kind"] == "slowloris":
                    self.write(sock, state)
            now = time.monotonic()
            due = [kind for when, kind in self.waiting if when <= now]
            self.waiting = [(when, kind) for when, kind in self.waiting if when > now]
            for kind in due:
                self.open(kind)
            self.open_peak = max(self.open_peak, len(self.conns))

    def close_all(self):
        for sock in list(self.conns):
            self.drop(sock, by_server=False)
        self.selector.close()


def attack(port, code, pipeline_requests, seconds, results):
    """Runs an Attacker in a child process, so that its work does not take
    the test process's interpreter lock from the normal client, and sends
    its counts through the results pipe."""
    attacker = Attacker(port, code, pipeline_requests)
    try:
        attacker.run(seconds)
    finally:
        attacker.close_all()
    results.send({"open_peak": attacker.open_peak, "closed_by_server": attacker.closed_by_server,
                  "connect_failures": attacker.connect_failures})
    results.close()


def test_normal_client_served_under_attack(make_server, many_fds):
    server = make_server(["--threads", "2", "--workers", "2", "--max-connections", "3000",
                          "--header-timeout", str(TIMEOUT_SECONDS),
                          "--body-timeout", str(TIMEOUT_SECONDS),
                          "--idle-timeout", str(TIMEOUT_SECONDS),
                          "--write-timeout", str(TIMEOUT_SECONDS)]).start()
    pid = server.process.pid
    urls = {}
    for i in range(20):
        url = "https://example.org/hostile/%d" % i
        urls[server.create(url).json()["code"]] = url
    codes = sorted(urls)
    # Warm up: every code redirected once, so the idle RSS includes the cache.
    for code in codes:
        assert server.request("GET", "/" + code).status == 301
    baseline_rss = rss_bytes(pid)
    baseline_fds = open_fds(pid)
    no_read = HOLDING_EACH
    partial = 3 * HOLDING_EACH + 4 * CYCLING_EACH
    bound = (baseline_rss + no_read * NO_READ_BYTES + partial * PARTIAL_BYTES
             + ALLOCATOR_ALLOWANCE)

    sanitized = is_sanitizer_build(pid)
    latency_bound = 15.0 if sanitized else 2.0
    pipeline_requests = SANITIZER_PIPELINE_REQUESTS if sanitized else PIPELINE_REQUESTS
    receiver, sender = multiprocessing.Pipe(duplex=False)
    attacker = multiprocessing.get_context("fork").Process(
        target=attack, args=(server.port, codes[0], pipeline_requests, ATTACK_SECONDS, sender))
    latencies = []
    failures = []
    peak_rss = baseline_rss
    peak_fds = baseline_fds

    with Client(server.port, timeout=30) as persistent:
        attacker.start()
        sender.close()
        try:
            n = 0
            while attacker.is_alive():
                code = codes[n % len(codes)]
                start = time.monotonic()
                if n % 5 == 0:
                    response = server.request("GET", "/" + code)  # a fresh connection
                else:
                    response = persistent.request("GET", "/" + code)
                latencies.append(time.monotonic() - start)
                if response.status != 301 or response.header("location") != urls[code]:
                    failures.append((code, response))
                n += 1
                peak_rss = max(peak_rss, rss_bytes(pid))
                peak_fds = max(peak_fds, open_fds(pid))
                time.sleep(0.02)
            stats = receiver.recv()
        finally:
            attacker.join(ATTACK_SECONDS + 30)
            if attacker.is_alive():
                attacker.kill()
                attacker.join()
            receiver.close()

    print("hostile: peak %d connections open (client side), %d server descriptors over idle; "
          "peak RSS %.1f MiB, bound %.1f MiB, idle %.1f MiB; %d normal requests, max latency "
          "%.3f s; %d closed by the server" % (
              stats["open_peak"], peak_fds - baseline_fds, peak_rss / MIB, bound / MIB,
              baseline_rss / MIB, len(latencies), max(latencies), stats["closed_by_server"]))
    assert not failures, failures[:5]
    assert len(latencies) > 100, "too few normal requests during the attack"
    assert max(latencies) < latency_bound, sorted(latencies)[-10:]
    assert stats["open_peak"] >= 2000, stats
    assert peak_fds - baseline_fds >= 2000, (peak_fds, baseline_fds)
    # Timeouts and rejections closed connections, which came back.
    assert stats["closed_by_server"] > 2000, stats
    if not sanitized:
        assert peak_rss < bound, "peak RSS %.1f MiB, bound %.1f MiB (idle %.1f MiB)" % (
            peak_rss / MIB, bound / MIB, baseline_rss / MIB)

    # Every hostile connection gives its slot back.
    deadline = time.monotonic() + 20
    while open_fds(pid) > baseline_fds + 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_fds(pid) <= baseline_fds + 5, (open_fds(pid), baseline_fds)
    for code in codes:
        response = server.request("GET", "/" + code)
        assert response.header("location") == urls[code]
    assert server.stop() == 0


def test_thousand_request_pipeline(server):
    code = server.create("https://example.org/pipeline").json()["code"]
    auth = {"Authorization": "Bearer test-admin-key-0123456789"}
    requests = []
    expected = []
    for i in range(1000):
        step = i % 10
        if step in (0, 1, 2, 3):
            requests.append(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % code.encode())
            expected.append(301)
        elif step == 4:
            requests.append(b"HEAD /%s HTTP/1.1\r\nHost: x\r\n\r\n" % code.encode())
            expected.append(301)
        elif step == 5:
            requests.append(b"GET /miss%04d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            expected.append(404)
        elif step == 6:
            requests.append(build_request("POST", "/api/v1/links",
                                          {"url": "https://example.org/pipeline/%d" % i}))
            expected.append(201)
        elif step == 7:
            requests.append(build_request("GET", "/api/v1/links/" + code, headers=auth))
            expected.append(200)
        elif step == 8:
            requests.append(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            expected.append(200)
        else:
            requests.append(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            expected.append(200)

    with Client(server.port, timeout=60) as client:
        sender = threading.Thread(target=client.send, args=(b"".join(requests),))
        sender.start()
        responses = []
        for raw in requests:
            responses.append(client.read_response(head=raw.startswith(b"HEAD")))
        sender.join()
    assert [r.status for r in responses] == expected
    for raw, response in zip(requests, responses):
        if response.status == 301:
            assert response.header("location") == "https://example.org/pipeline"
        if raw.startswith(b"POST"):
            assert response.json()["url"] in raw.decode()


def test_non_reading_client_bounded(make_server):
    """A client pipelines requests and never reads a response. The server
    must stop reading from it once its unsent output passes the high-water
    mark, so the client's sends block after a bounded amount, the server's
    memory stays flat, and the write timeout closes the connection."""
    server = make_server(["--threads", "1", "--write-timeout", "2"]).start()
    code = server.create("https://example.org/never-reads").json()["code"]
    assert server.request("GET", "/" + code).status == 301
    pid = server.process.pid
    baseline_rss = rss_bytes(pid)

    block = (b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % code.encode()) * 4096
    sent = 0
    limit = 256 * MIB  # far more than kernel buffers and the server's own
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        # Shorter than the write timeout, so that the send loop usually sees
        # the stall before the server closes the connection.
        sock.settimeout(0.5)
        while sent < limit:
            try:
                sent += sock.send(block)
            except socket.timeout:
                break  # no progress for 0.5 s: the server stopped reading
            except (ConnectionResetError, BrokenPipeError):
                break  # the write timeout already closed the connection
        assert sent < limit, "the server read %d bytes from a client that reads nothing" % sent

        growth = rss_bytes(pid) - baseline_rss
        assert growth < 16 * MIB, "RSS grew by %.1f MiB" % (growth / MIB)

        # The write timeout (2 s) closes the connection. Reading here would
        # let the server go on, so the test watches the TCP state instead.
        deadline = time.monotonic() + 15
        while tcp_state(sock) == TCP_ESTABLISHED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tcp_state(sock) != TCP_ESTABLISHED, "connection still open 15 s after it stalled"
    finally:
        sock.close()
    assert server.request("GET", "/" + code).status == 301


def test_hostile_requests_get_json_errors(server):
    cases = [
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n", 431),
        (b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /abc HTTP/1.1\r\nHost: x\x00y\r\n\r\n", 400),
        (b"GET /abc\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"POST /api/v1/links HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ]
    for raw, status in cases:
        with server.connect() as client:
            client.send(raw)
            response = client.read_response()
            assert response.status == status, (raw[:60], response)
            error_code(response)
            assert client.closed_by_server(), raw[:60]
