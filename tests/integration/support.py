"""Helpers for the link lifecycle tests: API keys, polling with a deadline,
concurrent requests and a server-sent events reader.

Every wait here has a deadline, so a server that never responds fails the
test instead of hanging it.
"""

import datetime
import glob
import json
import os
import socket
import threading
import time

import pytest

from shortd import ADMIN_KEY, Client, build_request, error_code

ADMIN = {"Authorization": "Bearer " + ADMIN_KEY}


@pytest.fixture(autouse=True)
def no_sanitizer_report(tmp_path):
    """Fails a test whose servers logged a sanitizer report. It is torn down
    after make_server has ended the servers, so their logs are complete."""
    yield
    for path in sorted(glob.glob(os.path.join(str(tmp_path), "**", "shortd-*.log"),
                                 recursive=True)):
        with open(path, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        assert "Sanitizer" not in log, (path, log[-4000:])
        assert "runtime error" not in log, (path, log[-4000:])


def bearer(key):
    """Returns the headers that authenticate a request with key."""
    return {"Authorization": "Bearer " + key}


def create_key(server, name="client", **fields):
    """Creates an API key with the admin key and returns its JSON object,
    which includes the secret under "key"."""
    fields["name"] = name
    response = server.request("POST", "/api/v1/keys", fields, ADMIN)
    assert response.status == 201, response
    return response.json()


def expect_error(response, status, code):
    """Asserts that response is an error with this status and code in the
    {"error": {"code", "message"}} shape."""
    assert response.status == status, response
    assert error_code(response) == code, response


def wait_until(check, timeout=10.0, interval=0.05, description="condition"):
    """Calls check() until it returns a true value and returns that value.
    Raises AssertionError with the last value after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("%s not reached within %.1f s; last value: %r"
                                 % (description, timeout, value))
        time.sleep(interval)


def read_link(server, code, headers=None):
    response = server.request("GET", "/api/v1/links/" + code, None, headers or ADMIN)
    assert response.status == 200, response
    return response.json()


def wait_for_visits(server, code, expected, timeout=10.0):
    """Polls the link until the store shows expected visits; returns the link."""
    def check():
        link = read_link(server, code)
        return link if link["visits"] == expected else None

    try:
        return wait_until(check, timeout, description="visits == %d for %s" % (expected, code))
    except AssertionError:
        raise AssertionError("link %s never showed %d visits: %r"
                             % (code, expected, read_link(server, code)))


def list_all_codes(server, headers=None):
    """Returns every code in the listing that headers may see, newest first."""
    codes = []
    cursor = None
    for _ in range(1000):
        path = "/api/v1/links?limit=1000" + ("&cursor=" + cursor if cursor else "")
        response = server.request("GET", path, None, headers or ADMIN)
        assert response.status == 200, response
        page = response.json()
        codes += [link["code"] for link in page["links"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return codes
    raise AssertionError("listing never ended")


def utc_today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def rfc3339_in(seconds):
    """Returns the UTC time seconds from now as RFC 3339 with milliseconds."""
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def send_at_once(port, raw_requests, timeout=30.0):
    """Opens one connection per request, then sends every request as close
    to the same moment as threads allow. Returns the responses in order."""
    clients = [Client(port, timeout) for _ in raw_requests]
    barrier = threading.Barrier(len(raw_requests))
    results = [None] * len(raw_requests)
    errors = []

    def worker(index):
        try:
            barrier.wait(timeout)
            clients[index].send(raw_requests[index])
            head = raw_requests[index].startswith(b"HEAD ")
            results[index] = clients[index].read_response(head=head)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(raw_requests))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout + 5)
    finally:
        for client in clients:
            client.close()
    if errors:
        raise errors[0]
    assert all(result is not None for result in results), "a request got no response"
    return results


def create_request(url, key=None, **fields):
    fields["url"] = url
    headers = bearer(key) if key else None
    return build_request("POST", "/api/v1/links", fields, headers)


class Frame:
    """One server-sent event: its id, event type, data and comment lines."""

    def __init__(self):
        self.id = None
        self.event = None
        self.data_lines = []
        self.comments = []

    @property
    def data(self):
        return "\n".join(self.data_lines)

    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        return "<Frame id=%s event=%s data=%.300s comments=%r>" % (
            self.id, self.event, self.data, self.comments)


class EventStream:
    """A GET /api/v1/events connection read with timeouts.

    The response head is read at once. It sets status and headers, and for
    a status other than 200, body contains the error. Frames are parsed by the rules of
    the event-stream format: "field: value" lines, comments starting with
    ":", and a blank line that ends a frame.
    """

    def __init__(self, port, key, topics="links,visits", last_event_id=None,
                 receive_buffer=None, timeout=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            # Set before connecting, so the advertised window stays small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buffer = b""
        self.closed = False
        self.frames = []  # every frame read so far, for failure messages

        headers = {}
        if key is not None:
            headers.update(bearer(key))
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        path = "/api/v1/events" + ("?topics=" + topics if topics is not None else "")
        self.sock.sendall(build_request("GET", path, None, headers))
        self._read_head(timeout)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.closed = True
            raise ConnectionError("event stream closed by the server")
        self.buffer += chunk

    def _read_head(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())
        self.body = b""
        if self.status != 200:
            length = int(self.headers.get("content-length", ["0"])[0])
            while len(self.buffer) < length:
                self._fill(deadline)
            self.body = self.buffer[:length]

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def error_code(self):
        return error_code(_Body(self.body))

    def read_raw_until(self, marker, timeout=10.0):
        """Reads until marker is in the unparsed bytes and returns them all,
        for checks on the bytes themselves. The frames stay unparsed."""
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            try:
                self._fill(deadline)
            except (socket.timeout, ConnectionError, OSError):
                raise AssertionError("%r did not arrive within %.1f s; received: %r"
                                     % (marker, timeout, self.buffer))
        return self.buffer

    def next_frame(self, timeout=5.0):
        """Returns the next frame, or None when none is complete within
        timeout seconds or the server closed the stream."""
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.buffer:
            try:
                self._fill(deadline)
            except (socket.timeout, ConnectionError, OSError):
                return None
        block, _, self.buffer = self.buffer.partition(b"\n\n")
        frame = Frame()
        for line in block.decode("utf-8").split("\n"):
            if line.startswith(":"):
                frame.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                frame.id = value
            elif name == "event":
                frame.event = value
            elif name == "data":
                frame.data_lines.append(value)
        self.frames.append(frame)
        return frame

    def events(self, seconds):
        """Returns the event frames (not comments or retry lines) that arrive
        within seconds."""
        deadline = time.monotonic() + seconds
        found = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return found
            frame = self.next_frame(remaining)
            if frame is None:
                return found
            if frame.event is not None:
                found.append(frame)

    def wait_for(self, match, timeout=10.0, description="event"):
        """Reads frames until match(frame) is true and returns that frame.
        Raises AssertionError listing the frames seen when none matches."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            frame = self.next_frame(remaining) if remaining > 0 else None
            if frame is None:
                raise AssertionError("%s did not arrive within %.1f s; frames seen: %r"
                                     % (description, timeout, self.frames[-20:]))
            if match(frame):
                return frame

    def wait_for_event(self, event_type, code=None, timeout=10.0):
        def match(frame):
            if frame.event != event_type:
                return False
            if code is None:
                return True
            document = frame.json()
            link = document.get("link") or document
            return link.get("code") == code

        return self.wait_for(match, timeout, "%s for %s" % (event_type, code))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Body:
    """Adapts raw bytes to the json() interface that error_code reads."""

    def __init__(self, body):
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))
