"""Resource limits: too few file descriptors and failing allocations.

With a low RLIMIT_NOFILE, accept fails with EMFILE. shortd must not spin,
so its CPU time from /proc/PID/stat stays low while connections wait. It
must log the failure at most about once a second, and serve the waiting
connections once descriptors are free again.

Allocation failure comes from shims/failmalloc.c, an LD_PRELOAD shim that
the test builds and arms with a signal. A request whose allocation fails
must end with 503 (or with its normal answer when the failed allocation
was not needed for it), and shortd must go on serving once allocations
succeed again.
"""

import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from shortd import ADMIN_KEY, BINARY, Client, build_request, error_code

HERE = os.path.dirname(os.path.abspath(__file__))
AUTH = {"Authorization": "Bearer " + ADMIN_KEY}
LOW_NOFILE = 64


def cpu_seconds(pid):
    """Returns the user plus system CPU time of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of proc(5) (utime, stime), counted after the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_descriptor_exhaustion_no_busy_loop(make_server):
    """shortd runs with RLIMIT_NOFILE 64; 150 clients connect at once. The
    ones beyond the limit wait in the listen backlog while accept fails."""
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_NOFILE, LOW_NOFILE))

    server = make_server(["--threads", "2", "--workers", "2", "--max-connections", "1000"])
    server.preexec_fn = low_limit
    server.start()
    pid = server.process.pid
    code = server.create("https://example.org/descriptors").json()["code"]

    waiting = []
    try:
        for _ in range(150):
            waiting.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        # Wait until shortd uses every descriptor it may and accept failed.
        deadline = time.monotonic() + 10
        while "accept failed" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "accept failed" in server.log(), server.log()[-2000:]
        assert open_fds(pid) >= LOW_NOFILE - 2

        before = cpu_seconds(pid)
        time.sleep(3)
        used = cpu_seconds(pid) - before
        # A busy loop would use the full 3 s of a core; a retry every 100 ms
        # uses a few milliseconds.
        assert used < 0.5, "shortd used %.2f s of CPU in 3 s while out of descriptors" % used

        lines = [line for line in server.log().splitlines() if "accept failed" in line]
        assert 1 <= len(lines) <= 8, lines
        assert "Too many open files" in lines[0], lines[0]
    finally:
        for sock in waiting:
            sock.close()

    # With the descriptors back, shortd accepts again and serves.
    deadline = time.monotonic() + 15
    response = None
    while time.monotonic() < deadline:
        try:
            response = server.request("GET", "/" + code)
            break
        except OSError:
            time.sleep(0.2)
    assert response is not None and response.status == 301, response
    assert server.stop() == 0


# ---- allocation failures ----

@pytest.fixture
def failmalloc(tmp_path):
    """Builds the shim and returns (binary, environment) to run shortd with
    it. A plain build preloads the shim. A sanitizer build, whose runtime
    replaces malloc itself, is linked again from its objects with the shim
    in front of malloc (-Wl,--wrap), which covers shortd's own calls."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the allocation failure shim")
    source = os.path.join(HERE, "shims", "failmalloc.c")
    linked = subprocess.run(["ldd", BINARY], capture_output=True, text=True).stdout
    sanitize = ("thread" if "libtsan" in linked else
                "address,undefined" if "libasan" in linked else None)
    if sanitize is None:
        shim = tmp_path / "failmalloc.so"
        subprocess.run([compiler, "-shared", "-fPIC", "-O2", source, "-o", str(shim)], check=True)
        return BINARY, {"LD_PRELOAD": str(shim)}

    build = os.path.dirname(os.path.abspath(BINARY))
    main_object = os.path.join(build, "obj", "src", "app", "main.o")
    library = os.path.join(build, "libshortd.a")
    if not (os.path.exists(main_object) and os.path.exists(library)):
        pytest.skip("no objects next to %s to link a variant with the shim" % BINARY)
    libraries = subprocess.run(["pkg-config", "--libs", "sqlite3", "jansson", "libidn2",
                                "libsodium", "liburiparser"],
                               capture_output=True, text=True, check=True).stdout.split()
    binary = tmp_path / "shortd-failmalloc"
    subprocess.run([compiler, "-g", "-O1", "-DFAILMALLOC_WRAP", "-fsanitize=" + sanitize,
                    "-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc", "-o", str(binary),
                    main_object, source, library] + libraries + ["-lpthread", "-lm"], check=True)
    return str(binary), {}


class Faults:
    """Arms and disarms the shim in a running server."""

    def __init__(self, server, control):
        self.server = server
        self.control = control
        self.failures = 0

    def _wait_for(self, marker, count):
        deadline = time.monotonic() + 5
        while self.server.log().count(marker) < count:
            assert time.monotonic() < deadline, "the shim did not answer %r" % marker
            assert self.server.process.poll() is None, self.server.log()[-3000:]
            time.sleep(0.005)

    def arm(self, skip, min_size, count):
        with open(self.control, "w") as f:
            f.write("%d %d %d\n" % (skip, min_size, count))
        armed = self.server.log().count("failmalloc: armed")
        self.server.process.send_signal(signal.SIGUSR1)
        self._wait_for("failmalloc: armed", armed + 1)

    def disarm(self):
        marker = "failmalloc: disarmed after "
        disarmed = self.server.log().count(marker)
        self.server.process.send_signal(signal.SIGUSR2)
        self._wait_for(marker, disarmed + 1)
        last = self.server.log().rsplit(marker, 1)[1].split("\n", 1)[0]
        self.failures += int(last)
        return int(last)


def start_with_shim(make_server, failmalloc, tmp_path, args):
    binary, env = failmalloc
    control = str(tmp_path / "failmalloc.control")
    with open(control, "w") as f:
        f.write("0 1 0\n")
    env = dict(env, FAILMALLOC_CONTROL=control)
    server = make_server(args, env=env)
    server.binary = binary
    server.start()
    return server, Faults(server, control)


def request_kinds(server, code, key):
    """Returns (name, raw request, statuses that are right without a fault)."""
    return [
        ("create", build_request("POST", "/api/v1/links",
                                 {"url": "https://example.org/alloc/%d" % time.monotonic_ns()}),
         (201,)),
        ("create_alias", build_request("POST", "/api/v1/links", {
            "url": "https://example.org/alias/%d" % time.monotonic_ns(),
            "alias": "a%d" % time.monotonic_ns(), "expires_at": "2099-01-01T00:00:00Z",
            "max_visits": 5}), (201,)),
        ("redirect_miss", b"GET /miss%d HTTP/1.1\r\nHost: x\r\n\r\n" % time.monotonic_ns(),
         (404,)),
        ("redirect_hit", b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % code.encode(), (301,)),
        ("read", build_request("GET", "/api/v1/links/" + code), (200,)),
        ("stats", build_request("GET", "/api/v1/links/%s/stats" % code, headers=AUTH), (200,)),
        ("list", build_request("GET", "/api/v1/links?limit=5", headers=AUTH), (200,)),
        ("list_key", build_request("GET", "/api/v1/links", headers={
            "Authorization": "Bearer " + key}), (200,)),
        ("keys", build_request("GET", "/api/v1/keys", headers=AUTH), (200,)),
        ("key_create", build_request("POST", "/api/v1/keys", {"name": "k%d" % time.monotonic_ns()},
                                     AUTH), (201,)),
        ("readyz", b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", (200, 503)),
        ("delete", build_request("DELETE", "/api/v1/links/miss%d" % time.monotonic_ns(),
                                 headers=AUTH), (404,)),
    ]


def send_one(server, client, raw):
    """Sends raw on client; returns (client, response or None). A connection
    the server closed is replaced while the server runs."""
    try:
        client.send(raw)
        return client, client.read_response(head=raw.startswith(b"HEAD"))
    except (ConnectionError, OSError):
        client.close()
        assert server.process.poll() is None, "shortd died:\n" + server.log()[-3000:]
        return server.connect(), None


# Listings whose 200 answer under a fault must equal the answer without one:
# a page that silently misses an entry is worse than a 503.
COMPLETE_KINDS = ("list", "list_key", "keys")


def test_each_allocation_failure_answers_503(make_server, failmalloc, tmp_path):
    """Fails one allocation at a time, the first, the second and so on of
    each kind of request, and checks each answer and that shortd lives."""
    server, faults = start_with_shim(make_server, failmalloc, tmp_path,
                                     ["--threads", "1", "--workers", "1",
                                      "--flush-interval", "0.05"])
    code = server.create("https://example.org/alloc").json()["code"]
    key = server.request("POST", "/api/v1/keys", {"name": "sweep"}, AUTH).json()["key"]
    assert server.request("GET", "/" + code).status == 301

    unavailable = {}
    client = server.connect()
    assert client.request("GET", "/healthz").status == 200
    try:
        for skip in range(30):
            for name, raw, normal in request_kinds(server, code, key):
                faults.arm(skip, 1, 1)
                client, response = send_one(server, client, raw)
                faults.disarm()
                assert server.process.poll() is None, (name, skip, server.log()[-3000:])
                if response is None:
                    continue  # the connection was closed: no answer, no crash
                if response.status == 503:
                    assert response.header("retry-after") is not None, (name, skip, response)
                    unavailable[name] = unavailable.get(name, 0) + 1
                    continue
                assert response.status in normal, (name, skip, response)
                if name in COMPLETE_KINDS:
                    client, again = send_one(server, client, raw)
                    assert again.body == response.body, (name, skip, response.body, again.body)
    finally:
        client.close()

    assert faults.failures > 0, "the shim failed no allocation"
    for name in ("create", "redirect_miss", "read"):
        assert unavailable.get(name, 0) > 0, (name, unavailable)

    # Back to normal, without a restart.
    deadline = time.monotonic() + 10
    while server.request("GET", "/readyz").status != 200:
        assert time.monotonic() < deadline, server.request("GET", "/readyz")
        time.sleep(0.1)
    created = server.create("https://example.org/alloc/after")
    assert created.status == 201, created
    assert server.request("GET", "/" + created.json()["code"]).status == 301
    assert server.stop() == 0


def test_all_allocations_failing_answers_503(make_server, failmalloc, tmp_path):
    """While every allocation fails, requests on open connections get 503
    (or their answer, when it needs no allocation) and shortd survives."""
    server, faults = start_with_shim(make_server, failmalloc, tmp_path,
                                     ["--threads", "2", "--workers", "2",
                                      "--flush-interval", "0.05"])
    code = server.create("https://example.org/all-fail").json()["code"]
    key = server.request("POST", "/api/v1/keys", {"name": "all"}, AUTH).json()["key"]
    assert server.request("GET", "/" + code).status == 301
    kinds = request_kinds(server, code, key)
    clients = [server.connect() for _ in kinds]
    for client in clients:
        # Accepted before the faults begin, so that the requests find a connection.
        assert client.request("GET", "/healthz").status == 200
    try:
        faults.arm(0, 1, 10**12)
        answers = []
        for client, (name, raw, normal) in zip(clients, kinds):
            _, response = send_one(server, client, raw)
            answers.append((name, response))
        time.sleep(0.5)  # ticks and flushes fail meanwhile
        assert server.process.poll() is None, server.log()[-3000:]
        faults.disarm()
    finally:
        for client in clients:
            client.close()

    for name, response in answers:
        assert response is not None, name
        if name == "redirect_hit":
            assert response.status == 301, response  # the cached path allocates nothing
        else:
            assert response.status == 503, (name, response)
            error_code(response)
    assert faults.failures > 0

    deadline = time.monotonic() + 10
    while server.request("GET", "/readyz").status != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert server.create("https://example.org/all-fail/after").status == 201
    assert server.stop() == 0
