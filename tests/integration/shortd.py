"""Helpers that start the real shortd binary and talk HTTP/1.1 to it.

Every server listens on 127.0.0.1 with a port the kernel picks (--listen
127.0.0.1:0); the port is read from the start line in its log. Clients are
plain sockets, so tests control every byte they send and can pipeline.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time

BINARY = os.environ.get(
    "SHORTD_BIN",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "shortd"))

ADMIN_KEY = "test-admin-key-0123456789"
START_TIMEOUT = 20.0

# Exit status of a sanitizer build of shortd after a report. No path of
# shortd itself exits with it (it uses 0, 1 and 2).
SANITIZER_EXIT = 86

# A report stops the process at once with SANITIZER_EXIT, so a memory error
# or a data race in a server that runs for a whole test cannot go unseen.
# Options already in the environment come later and therefore win.
SANITIZER_OPTIONS = {
    "ASAN_OPTIONS": "halt_on_error=1:abort_on_error=0:detect_leaks=1:exitcode=%d" % SANITIZER_EXIT,
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=%d" % SANITIZER_EXIT,
    "TSAN_OPTIONS": "halt_on_error=1:exitcode=%d" % SANITIZER_EXIT,
}

# Lines that start a sanitizer report in a log.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                     "ThreadSanitizer: ", "runtime error:", "UndefinedBehaviorSanitizer")


def sanitizer_env(env):
    """Returns a copy of env with the sanitizer options of SANITIZER_OPTIONS
    put before any that env already has."""
    result = dict(env)
    for name, options in SANITIZER_OPTIONS.items():
        given = result.get(name)
        result[name] = options + (":" + given if given else "")
    return result


def find_sanitizer_report(text):
    """Returns the text from the first sanitizer report on, or None."""
    positions = [text.find(marker) for marker in SANITIZER_MARKERS]
    positions = [p for p in positions if p >= 0]
    if not positions:
        return None
    start = text.rfind("\n", 0, min(positions)) + 1
    return text[start:start + 6000]


class Server:
    """One shortd process with its own data folder and log file."""

    def __init__(self, folder, args=(), env=None, admin_key=ADMIN_KEY):
        self.folder = str(folder)
        self.db = os.path.join(self.folder, "data", "shortd.db")
        self.args = list(args)
        self.env = dict(env or {})
        if admin_key is not None:
            self.env.setdefault("SHORTD_ADMIN_KEY", admin_key)
        self.process = None
        self.port = None
        self.log_path = None
        self.log_paths = []
        self.statuses = []  # exit status of every process that ended
        self.runs = 0
        self.preexec_fn = None  # run in the child before exec, as Popen's
        self.binary = BINARY

    def start(self, extra_args=()):
        self.runs += 1
        self.log_path = os.path.join(self.folder, "shortd-%d.log" % self.runs)
        self.log_paths.append(self.log_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHORTD_")}
        env.update(self.env)
        env = sanitizer_env(env)
        # Tests send many creates from one address: the anonymous rate limit
        # is lifted unless a test sets its own (later flags win).
        args = [self.binary, "--listen", "127.0.0.1:0", "--db", self.db,
                "--base-url", "http://short.test",
                "--anonymous-burst", "1000000", "--anonymous-rate", "1000000"]
        args += self.args + list(extra_args)
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(args, stdout=log, stderr=log, env=env,
                                        preexec_fn=self.preexec_fn)
        log.close()

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log()
            match = re.search(r"listen=[^ ]*:(\d+)", text)
            if match:
                self.port = int(match.group(1))
                return self
            if self.process.poll() is not None:
                self.statuses.append(self.process.returncode)
                self.process = None
                raise RuntimeError("shortd exited with %d at start:\n%s"
                                   % (self.statuses[-1], text))
            time.sleep(0.02)
        self.kill()
        raise RuntimeError("shortd did not start in %.0f s:\n%s" % (START_TIMEOUT, self.log()))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Sends sig and returns the exit status."""
        if self.process is None:
            return None
        self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self.process = None
            raise AssertionError("shortd did not stop within %.0f s after %s:\n%s"
                                 % (timeout, sig, self.log()))
        self.process = None
        self.statuses.append(status)
        return status

    def kill(self):
        """Ends the process with SIGKILL, unless it already exited, in which
        case its own exit status is kept for sanitizer_problem()."""
        if self.process is not None:
            if self.process.poll() is not None:
                self.statuses.append(self.process.returncode)
            else:
                self.process.kill()
                self.process.wait()
            self.process = None

    def sanitizer_problem(self):
        """Returns a description of a sanitizer report in any log of this
        server, or of an exit with SANITIZER_EXIT, or None."""
        for path in self.log_paths:
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except FileNotFoundError:
                continue
            report = find_sanitizer_report(text)
            if report is not None:
                return "sanitizer report in %s:\n%s" % (path, report)
        if SANITIZER_EXIT in self.statuses:
            return "shortd exited with the sanitizer status %d" % SANITIZER_EXIT
        return None

    def connect(self, timeout=10.0):
        return Client(self.port, timeout)

    def request(self, method, path, body=None, headers=None):
        with self.connect() as client:
            return client.request(method, path, body, headers)

    def create(self, url, key=None, **fields):
        fields["url"] = url
        headers = {"Authorization": "Bearer " + key} if key else None
        return self.request("POST", "/api/v1/links", fields, headers)


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # lowercase name -> list of values
        self.body = body

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers, self.body[:200])


class Client:
    """A persistent HTTP/1.1 connection that can send raw bytes."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, path, body=None, headers=None, head=False):
        self.send(build_request(method, path, body, headers))
        return self.read_response(head=(method == "HEAD") or head)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buffer += chunk

    def _read_until(self, marker):
        while True:
            index = self.buffer.find(marker)
            if index >= 0:
                data = self.buffer[:index]
                self.buffer = self.buffer[index + len(marker):]
                return data
            self._fill()

    def _read_exact(self, count):
        while len(self.buffer) < count:
            self._fill()
        data = self.buffer[:count]
        self.buffer = self.buffer[count:]
        return data

    def read_response(self, head=False):
        while True:
            text = self._read_until(b"\r\n\r\n").decode("latin-1")
            lines = text.split("\r\n")
            parts = lines[0].split(" ", 2)
            status = int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), []).append(value.strip())
            if status == 100:
                continue
            length = int(headers.get("content-length", ["0"])[0])
            body = b"" if head or status in (204, 304) else self._read_exact(length)
            return Response(status, reason, headers, body)

    def closed_by_server(self, timeout=5.0):
        """Returns whether the server closes the connection (after any data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def build_request(method, path, body=None, headers=None):
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: short.test"]
    for name, value in headers.items():
        lines.append("%s: %s" % (name, value))
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return data + (body or b"")


def pipelined(port, requests, window=64, head=False):
    """Sends raw requests over one connection, window at a time, and returns
    the responses in order."""
    responses = []
    with Client(port, timeout=30.0) as client:
        for start in range(0, len(requests), window):
            batch = requests[start:start + window]
            client.send(b"".join(batch))
            for _ in batch:
                responses.append(client.read_response(head=head))
    return responses


def get_requests(codes):
    return [("GET /%s HTTP/1.1\r\nHost: short.test\r\n\r\n" % code).encode() for code in codes]


def error_code(response):
    """Returns the error code of a JSON error body, asserting its shape."""
    document = response.json()
    assert set(document) == {"error"}, document
    assert set(document["error"]) == {"code", "message"}, document
    assert document["error"]["message"], document
    return document["error"]["code"]


def create_requests(urls):
    return [build_request("POST", "/api/v1/links", {"url": url}) for url in urls]


def run_parallel(port, requests, connections=32, window=16, head=False):
    """Spreads requests over several pipelined connections and returns the
    responses in request order."""
    import threading

    results = [None] * len(requests)
    errors = []

    def worker(index):
        try:
            mine = list(range(index, len(requests), connections))
            responses = pipelined(port, [requests[i] for i in mine], window, head)
            for i, response in zip(mine, responses):
                results[i] = response
        except Exception as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def load_corpus():
    """Returns the 100,000 URLs of the test corpus, in file order."""
    import lzma

    path = os.path.join(os.path.dirname(__file__), "..", "data", "urls-debian.txt.xz")
    with lzma.open(path, "rt", encoding="utf-8", newline="\n") as f:
        return f.read().split("\n")[:-1]
