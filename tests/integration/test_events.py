"""GET /api/v1/events, the server-sent event stream, against the real binary.

The tests read streams through support.EventStream, whose every read has a
deadline. To show that an event did not arrive, a test publishes a later
event that the stream must receive (a sentinel) and checks what came before
it, instead of waiting for a silence.
"""

import re
import socket
import struct
import threading
import time

import pytest

from shortd import ADMIN_KEY, Client, build_request, create_requests, run_parallel
from support import (ADMIN, EventStream, bearer, create_key, expect_error, rfc3339_in,
                     wait_until)
from support import no_sanitizer_report  # noqa: F401 (an autouse fixture)

URL = "https://example.org/events"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def events_server(make_server):
    return make_server(["--threads", "2", "--flush-interval", "0.2",
                        "--event-keepalive", "30"]).start()


def send_buffer_max():
    """Returns the largest TCP send buffer the kernel grows a socket to."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


def check_frame(frame):
    """Asserts what every event frame carries and returns its JSON."""
    assert frame.id is not None, frame
    assert frame.id.isdigit(), frame
    document = frame.json()
    assert document["version"] == 1, frame
    assert document["type"] == frame.event, frame
    assert TIME.fullmatch(document["time"]), frame
    return document


def events_until(stream, event_type, code, timeout=10.0):
    """Returns every event frame up to and including the first event_type
    frame for code."""
    start = len(stream.frames)
    stream.wait_for_event(event_type, code, timeout)
    return [frame for frame in stream.frames[start:] if frame.event is not None]


def test_events_need_a_valid_key(events_server):
    server = events_server
    stream = EventStream(server.port, None)
    assert stream.status == 401, stream.body
    assert stream.error_code() == "missing_key", stream.body
    stream.close()

    stream = EventStream(server.port, "sk_not-a-key-not-a-key")
    assert stream.status == 403, stream.body
    assert stream.error_code() == "invalid_key", stream.body
    stream.close()

    key = create_key(server, "gone")
    assert server.request("DELETE", "/api/v1/keys/%d" % key["id"], None, ADMIN).status == 204
    stream = EventStream(server.port, key["key"])
    assert stream.status == 403, stream.body
    assert stream.error_code() == "key_revoked", stream.body
    stream.close()


@pytest.mark.parametrize("topics", ["", "link", "links,clicks", "LINKS", ",", "a" * 100])
def test_invalid_topics_rejected(events_server, topics):
    with EventStream(events_server.port, ADMIN_KEY, topics=topics) as stream:
        assert stream.status == 400, (topics, stream.body)
        assert stream.error_code() == "invalid_topics", stream.body


def test_events_accept_only_get(events_server):
    response = events_server.request("POST", "/api/v1/events", {}, ADMIN)
    expect_error(response, 405, "method_not_allowed")
    assert response.header("allow") == "GET", response


def test_stream_headers(events_server):
    with EventStream(events_server.port, ADMIN_KEY) as stream:
        assert stream.status == 200, stream.headers
        assert stream.header("content-type").startswith("text/event-stream"), stream.headers
        assert stream.header("cache-control") == "no-store", stream.headers


def test_link_lifecycle_events_in_order(events_server):
    server = events_server
    with EventStream(server.port, ADMIN_KEY) as stream:
        created = server.create(URL).json()
        code = created["code"]
        assert server.request("GET", "/" + code, None,
                              {"Referer": "https://Mail.Example.ORG/inbox"}).status == 301
        assert server.request("HEAD", "/" + code).status == 301
        assert server.request("GET", "/" + code).status == 301
        assert server.request("DELETE", "/api/v1/links/" + code, None, ADMIN).status == 204

        frames = events_until(stream, "link.deleted", code)
        assert [frame.event for frame in frames] == ["link.created", "visit", "visit",
                                                     "link.deleted"], frames
        documents = [check_frame(frame) for frame in frames]
        ids = [int(frame.id) for frame in frames]
        assert ids == sorted(ids), frames
        assert len(set(ids)) == 4, frames

        assert documents[0]["link"] == created, frames[0]
        assert set(documents[1]) == {"version", "type", "time", "code", "referrer_host"}, frames
        assert documents[1]["code"] == code, frames[1]
        assert documents[1]["referrer_host"] == "mail.example.org", frames[1]
        assert documents[2]["referrer_host"] is None, frames[2]
        assert documents[3]["code"] == code, frames[3]


def test_link_expired_event(events_server):
    server = events_server
    key = create_key(server, "owner")["key"]
    with EventStream(server.port, ADMIN_KEY, topics="links") as stream, \
            EventStream(server.port, key, topics="links") as owner_stream:
        code = server.create(URL, expires_at=rfc3339_in(1.0), key=key).json()["code"]
        frame = stream.wait_for_event("link.expired", code, timeout=15)
        document = check_frame(frame)
        assert set(document) == {"version", "type", "time", "code"}, frame
        assert document["code"] == code, frame
        owner_frame = owner_stream.wait_for_event("link.expired", code, timeout=15)
        assert owner_frame.id == frame.id, (owner_frame, frame)


def test_many_links_expiring_together(events_server):
    """More links expire at one time than one expiry sweep marks (1000)."""
    server = events_server
    with EventStream(server.port, ADMIN_KEY, topics="links") as stream:
        expires_at = rfc3339_in(4.0)
        requests = [build_request("POST", "/api/v1/links",
                                  {"url": "https://example.org/%d" % i, "expires_at": expires_at})
                    for i in range(2500)]
        responses = run_parallel(server.port, requests, connections=8)
        assert all(response.status == 201 for response in responses)
        codes = {response.json()["code"] for response in responses}

        expired = set()
        deadline = time.monotonic() + 20
        while expired != codes and time.monotonic() < deadline:
            frame = stream.next_frame(1.0)
            if frame is not None and frame.event == "link.expired":
                expired.add(frame.json()["code"])
        assert len(expired) == 2500, len(expired)
        assert expired == codes
        assert not any(frame.event == "dropped" for frame in stream.frames), stream.frames[-5:]

    statuses = run_parallel(server.port, [build_request("GET", "/" + code) for code in codes],
                            connections=8)
    assert {response.status for response in statuses} == {410}


def test_rejected_writes_publish_nothing(events_server):
    server = events_server
    with EventStream(server.port, ADMIN_KEY, topics="links") as stream:
        first = server.create(URL, alias="only-once").json()["code"]
        assert server.create(URL + "/again", alias="only-once").status == 409
        plain = server.create(URL).json()["code"]
        assert server.create(URL).status == 200
        assert server.create(URL, alias="api").status == 400
        assert server.request("DELETE", "/api/v1/links/" + plain, None, ADMIN).status == 204
        assert server.request("DELETE", "/api/v1/links/" + plain, None, ADMIN).status == 410
        sentinel = server.create(URL + "/sentinel").json()["code"]

        frames = events_until(stream, "link.created", sentinel)
        seen = [(frame.event, frame.json().get("code") or frame.json()["link"]["code"])
                for frame in frames]
        assert seen == [("link.created", first), ("link.created", plain),
                        ("link.deleted", plain), ("link.created", sentinel)], frames


def test_key_sees_only_own_links(events_server):
    server = events_server
    mine = create_key(server, "mine")["key"]
    theirs = create_key(server, "theirs")["key"]
    with EventStream(server.port, mine) as stream:
        own = server.create(URL + "/own", key=mine).json()["code"]
        other = server.create(URL + "/other", key=theirs).json()["code"]
        anonymous = server.create(URL + "/anonymous").json()["code"]
        admin = server.create(URL + "/admin", key=ADMIN_KEY).json()["code"]
        for code in (other, anonymous, admin, own):
            assert server.request("GET", "/" + code).status == 301
        for code in (other, anonymous, admin, own):
            assert server.request("DELETE", "/api/v1/links/" + code, None, ADMIN).status == 204

        frames = events_until(stream, "link.deleted", own)
        codes = {frame.json().get("code") or frame.json()["link"]["code"] for frame in frames}
        assert codes == {own}, frames
        assert [frame.event for frame in frames] == ["link.created", "visit", "link.deleted"], \
            frames


def test_admin_sees_every_link(events_server):
    server = events_server
    key = create_key(server, "k")["key"]
    with EventStream(server.port, ADMIN_KEY, topics="links") as stream:
        owned = server.create(URL + "/owned", key=key).json()["code"]
        anonymous = server.create(URL + "/anonymous").json()["code"]
        stream.wait_for_event("link.created", owned)
        stream.wait_for_event("link.created", anonymous)


def test_topics_filter_events(events_server):
    server = events_server
    with EventStream(server.port, ADMIN_KEY, topics="links") as links, \
            EventStream(server.port, ADMIN_KEY, topics="visits") as visits:
        code = server.create(URL).json()["code"]
        assert server.request("GET", "/" + code).status == 301
        assert server.request("DELETE", "/api/v1/links/" + code, None, ADMIN).status == 204
        sentinel = server.create(URL + "/sentinel").json()["code"]
        assert server.request("GET", "/" + sentinel).status == 301

        link_frames = events_until(links, "link.created", sentinel)
        assert [frame.event for frame in link_frames] == ["link.created", "link.deleted",
                                                          "link.created"], link_frames
        visit_frames = events_until(visits, "visit", sentinel)
        assert [frame.json()["code"] for frame in visit_frames] == [code, sentinel], \
            visit_frames


def test_resume_replays_missed_link_events(events_server):
    server = events_server
    with EventStream(server.port, ADMIN_KEY, topics="links") as stream:
        first = server.create(URL + "/1").json()["code"]
        seen = stream.wait_for_event("link.created", first)

    missed = [server.create(URL + "/%d" % i).json()["code"] for i in range(2, 5)]
    with EventStream(server.port, ADMIN_KEY, topics="links", last_event_id=seen.id) as stream:
        frames = events_until(stream, "link.created", missed[-1])
        replayed = [frame for frame in frames if frame.event == "link.created"]
        assert [frame.json()["link"]["code"] for frame in replayed] == missed, frames
        assert all(int(frame.id) > int(seen.id) for frame in replayed), frames
        assert not any(frame.event == "dropped" for frame in frames), frames


def test_key_resume_replays_own_link_events(events_server):
    server = events_server
    key = create_key(server, "k")["key"]
    with EventStream(server.port, key, topics="links") as stream:
        first = server.create(URL + "/1", key=key).json()["code"]
        seen = stream.wait_for_event("link.created", first)

    server.create(URL + "/not-mine")
    missed = server.create(URL + "/2", key=key).json()["code"]
    with EventStream(server.port, key, topics="links", last_event_id=seen.id) as stream:
        frames = events_until(stream, "link.created", missed)
        codes = [frame.json()["link"]["code"] for frame in frames
                 if frame.event == "link.created"]
        assert codes == [missed], frames


def test_visits_replayed_while_another_listens(events_server):
    server = events_server
    code = server.create(URL).json()["code"]
    listener = EventStream(server.port, ADMIN_KEY, topics="visits")
    try:
        with EventStream(server.port, ADMIN_KEY, topics="visits") as stream:
            assert server.request("GET", "/" + code).status == 301
            seen = stream.wait_for_event("visit", code)
        # The other listener keeps the visits topic stored while this one is away.
        server.request("GET", "/" + code, None, {"Referer": "https://while-away.example/"})
        listener.wait_for(lambda f: f.event == "visit" and
                          f.json()["referrer_host"] == "while-away.example",
                          description="the visit made while the stream was away")
        with EventStream(server.port, ADMIN_KEY, topics="visits",
                         last_event_id=seen.id) as stream:
            frame = stream.wait_for_event("visit", code)
            assert frame.json()["referrer_host"] == "while-away.example", frame
    finally:
        listener.close()


def test_resume_after_restart_reports_loss(events_server):
    server = events_server
    with EventStream(server.port, ADMIN_KEY, topics="links") as stream:
        code = server.create(URL).json()["code"]
        old = stream.wait_for_event("link.created", code)
    assert server.stop() == 0
    server.start()

    with EventStream(server.port, ADMIN_KEY, topics="links", last_event_id=old.id) as stream:
        fresh = server.create(URL + "/after").json()["code"]
        frames = events_until(stream, "link.created", fresh)
        assert frames[0].event == "dropped", frames
        assert frames[0].json()["count"] is None, frames
        assert int(frames[-1].id) > int(old.id), frames


def test_keepalive_comments_on_idle_stream(make_server):
    server = make_server(["--event-keepalive", "0.2"]).start()
    with EventStream(server.port, ADMIN_KEY) as stream:
        frame = stream.wait_for(lambda f: "keep-alive" in f.comments, timeout=10,
                                description="a keep-alive comment")
        assert frame.event is None, frame
        assert frame.id is None, frame
        # Keep-alives keep coming while the stream stays idle.
        stream.wait_for(lambda f: "keep-alive" in f.comments, timeout=10,
                        description="a second keep-alive comment")


def test_slow_reader_told_of_dropped_events(make_server):
    server = make_server(["--threads", "2", "--event-queue", "4",
                          "--event-keepalive", "30"]).start()
    long_url = "https://example.org/" + "d" * 8000
    # The events must overflow the kernel's largest socket send buffer and
    # the server's own 64 KB of pending output before the queue drops.
    total = send_buffer_max() // 8000 + 200
    stream = EventStream(server.port, ADMIN_KEY, topics="links", receive_buffer=4096)
    try:
        responses = run_parallel(server.port, create_requests(
            ["%s/%d" % (long_url, i) for i in range(total)]), connections=4, window=16)
        assert all(response.status == 201 for response in responses)

        dropped = stream.wait_for(lambda f: f.event == "dropped", timeout=20,
                                  description="a dropped frame")
        count = dropped.json()["count"]
        assert dropped.json()["version"] == 1, dropped
        assert dropped.json()["type"] == "dropped", dropped
        assert isinstance(count, int) and count > 0, dropped

        # Once the client has caught up, the stream delivers again.
        deadline = time.monotonic() + 20
        while stream.next_frame(0.5) is not None and time.monotonic() < deadline:
            pass
        after = server.create("https://example.org/after-drops").json()["code"]
        stream.wait_for_event("link.created", after)

        created = sum(1 for f in stream.frames if f.event == "link.created")
        lost = sum(f.json()["count"] for f in stream.frames if f.event == "dropped")
        assert created + lost == total + 1, (created, lost)
    finally:
        stream.close()


def test_subscriber_limit(make_server):
    server = make_server(["--max-subscribers", "1", "--event-keepalive", "30"]).start()
    first = EventStream(server.port, ADMIN_KEY)
    assert first.status == 200
    second = EventStream(server.port, ADMIN_KEY)
    assert second.status == 503, second.body
    assert second.error_code() == "overloaded", second.body
    second.close()
    first.close()

    def reconnect():
        stream = EventStream(server.port, ADMIN_KEY)
        status = stream.status
        stream.close()
        return status == 200

    wait_until(reconnect, timeout=10, interval=0.1, description="a free subscriber slot")


def test_stop_with_open_stream_is_prompt(make_server):
    server = make_server(["--shutdown-timeout", "20", "--event-keepalive", "30"]).start()
    stream = EventStream(server.port, ADMIN_KEY)
    try:
        started = time.monotonic()
        assert server.stop(timeout=8) == 0
        assert time.monotonic() - started < 8
        while stream.next_frame(2) is not None:
            pass
        assert stream.closed, stream.frames
    finally:
        stream.close()


def test_revoked_key_stream_ends(events_server):
    server = events_server
    key = create_key(server, "revoked-while-watching")
    code = server.create(URL, key=key["key"]).json()["code"]
    stream = EventStream(server.port, key["key"])
    try:
        assert server.request("GET", "/" + code).status == 301
        stream.wait_for_event("visit", code)
        assert server.request("DELETE", "/api/v1/keys/%d" % key["id"], None, ADMIN).status == 204

        # After the revoke the key must not learn of further visits.
        for _ in range(3):
            assert server.request("GET", "/" + code).status == 301
        late = stream.events(2.0)
        assert [frame for frame in late if frame.event == "visit"] == [], late
    finally:
        stream.close()


def test_stream_churn_during_traffic(make_server):
    """Streams that open, read a little and vanish (some with a reset)
    while links are created, visited and deleted leave the server healthy.
    Under a sanitizer build this checks the stream's teardown."""
    server = make_server(["--threads", "2", "--event-queue", "2", "--event-keepalive", "0.1",
                          "--max-subscribers", "16"]).start()
    key = create_key(server, "churn", burst=100000, rate=100000)["key"]
    errors = []

    def churn(index):
        try:
            for round_number in range(25):
                secret = ADMIN_KEY if (index + round_number) % 2 else key
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                if round_number % 3 == 0:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
                sock.sendall(build_request("GET", "/api/v1/events", None, bearer(secret)))
                sock.recv(100 * (round_number % 4) + 10)
                # Stay a moment, so events are queued and written to this stream.
                time.sleep(0.01 * (round_number % 4))
                if round_number % 2:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                sock.close()
        except Exception as exc:  # reported by the test
            errors.append(exc)

    def traffic():
        try:
            for number in range(150):
                owner = key if number % 2 else ADMIN_KEY
                code = server.create("https://example.org/churn/%d" % number,
                                     key=owner).json()["code"]
                with Client(server.port) as client:
                    for _ in range(10):
                        client.request("GET", "/" + code, None,
                                       {"Referer": "https://r%d.example/" % (number % 3)})
                if number % 4 == 0:
                    server.request("DELETE", "/api/v1/links/" + code, None, ADMIN)
        except Exception as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(6)]
    threads.append(threading.Thread(target=traffic))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == [], errors

    assert server.request("GET", "/healthz").status == 200
    with EventStream(server.port, ADMIN_KEY, topics="links") as stream:
        code = server.create("https://example.org/after-churn").json()["code"]
        stream.wait_for_event("link.created", code)
    assert server.stop() == 0


def test_visit_event_valid_for_non_utf8_referrer(events_server):
    server = events_server
    code = server.create(URL).json()["code"]
    with EventStream(server.port, ADMIN_KEY, topics="visits") as stream:
        with Client(server.port) as client:
            request = build_request("GET", "/" + code).replace(
                b"\r\n\r\n", b"\r\nReferer: http://b\xfcr.example/\r\n\r\n")
            client.send(request)
            assert client.read_response().status == 301
        sentinel = server.create(URL + "/sentinel").json()["code"]
        assert server.request("GET", "/" + sentinel).status == 301

        raw = stream.read_raw_until(b'"code":"%s"' % sentinel.encode())
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise AssertionError("event stream is not UTF-8 (%s): %r" % (error, raw))
        frames = events_until(stream, "visit", sentinel)
        assert frames[0].json()["code"] == code, frames
