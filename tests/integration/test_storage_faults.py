"""Storage faults: a full disk and a file size limit.

While the database cannot grow, creates must answer 503 with Retry-After,
redirects must keep working from the cache and from the store, and /readyz
must answer 503 with the reason. Once space returns, shortd must recover
by itself, without a restart, and keep everything it acknowledged,
including visit counts whose flush failed meanwhile.

The full disk is a tmpfs of TMPFS_SIZE mounted in the test's temporary
folder, which needs root; the test is skipped where mounting is not
permitted. The file size limit is set on the running process with
prlimit(2), which any user may do to a process of their own.
"""

import errno
import os
import resource
import subprocess
import time

import pytest

from shortd import error_code

TMPFS_SIZE = "6m"
# Long URLs fill the store fast: a few hundred creates exhaust the space.
URL_PADDING = "p" * 3000
FAULT_DEADLINE = 60.0
RECOVERY_DEADLINE = 20.0


@pytest.fixture
def small_tmpfs(tmp_path):
    """Mounts a tmpfs of TMPFS_SIZE in the test's folder and yields its path;
    unmounts and removes it afterwards, whatever the test did. Request it
    before make_server, so that the servers stop before the unmount."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % TMPFS_SIZE,
                             "tmpfs", str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        mount_point.rmdir()
        pytest.skip("cannot mount a tmpfs to fill (needs root): %s" % result.stderr.strip())
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)]).returncode != 0:
            # Still busy: detach it now, the kernel frees it with its last user.
            subprocess.run(["umount", "-l", str(mount_point)], check=True)
        mount_point.rmdir()


def fill(folder):
    """Writes a file in folder until the file system is full; returns its path."""
    path = os.path.join(str(folder), "filler")
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        # Fill the last partial block too.
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return path


def create_until_unavailable(server, prefix):
    """Creates links until one answers 503. Returns (acknowledged, response)
    where acknowledged maps code to URL for every 201, and response is the
    503. Every other answer fails the test."""
    acknowledged = {}
    deadline = time.monotonic() + FAULT_DEADLINE
    n = 0
    with server.connect() as client:
        while time.monotonic() < deadline:
            url = "https://example.org/%s/%d/%s" % (prefix, n, URL_PADDING)
            n += 1
            response = client.request("POST", "/api/v1/links", {"url": url})
            if response.status == 201:
                acknowledged[response.json()["code"]] = url
                continue
            assert response.status == 503, response
            return acknowledged, response
    pytest.fail("creates still succeed after %.0f s (%d links)" % (FAULT_DEADLINE, n))


def wait_ready(server, expected, deadline=RECOVERY_DEADLINE):
    """Polls /readyz until it answers expected; returns the last response."""
    end = time.monotonic() + deadline
    response = None
    while time.monotonic() < end:
        response = server.request("GET", "/readyz")
        if response.status == expected:
            return response
        time.sleep(0.1)
    pytest.fail("/readyz answered %r, not %d, for %.0f s" % (response, expected, deadline))


def link_visits(server, code):
    response = server.request("GET", "/api/v1/links/" + code)
    assert response.status == 200, response
    return response.json()["visits"]


def wait_visits(server, expected, deadline=RECOVERY_DEADLINE):
    """Polls the visit counts of expected (code -> count) until they match."""
    end = time.monotonic() + deadline
    while True:
        actual = {code: link_visits(server, code) for code in expected}
        if actual == expected or time.monotonic() > end:
            return actual
        time.sleep(0.1)


def check_unavailable(response):
    assert response.status == 503, response
    assert response.header("retry-after") == "1", response
    assert error_code(response) == "store_unavailable", response


def check_redirects(server, links):
    for code, url in links.items():
        response = server.request("GET", "/" + code)
        assert response.status == 301, (code, response)
        assert response.header("location") == url, code


def prepare(server, prefix, count=20):
    """Creates links and returns them as two dicts, (cached, stored). The
    caller restarts the server and visits the first half, which puts it in
    the cache. The second half stays known only to the store."""
    links = {}
    for i in range(count):
        url = "https://example.org/%s/before/%d" % (prefix, i)
        response = server.create(url)
        assert response.status == 201, response
        links[response.json()["code"]] = url
    codes = sorted(links)
    cached = {code: links[code] for code in codes[:count // 2]}
    stored = {code: links[code] for code in codes[count // 2:]}
    return cached, stored


def run_fault_cycle(server, make_fault, clear_fault, reason, check_log=True):
    """Drives one fault: prepares links, makes the fault, checks the answers
    during it, clears it and checks the recovery and that nothing was lost."""
    cached, stored = prepare(server, "cycle")
    assert server.stop() == 0
    server.start()
    check_redirects(server, cached)  # now in the cache

    make_fault()
    acknowledged, refused = create_until_unavailable(server, "during")
    check_unavailable(refused)
    for _ in range(3):
        url = "https://example.org/refused/%d" % time.monotonic_ns()
        response = server.create(url)
        check_unavailable(response)

    ready = wait_ready(server, 503)
    assert error_code(ready) == "not_ready", ready
    assert reason in ready.json()["error"]["message"], ready
    assert server.request("GET", "/healthz").status == 200

    # Redirects from the cache and from the store, each counted as a visit
    # that the writer cannot flush yet.
    check_redirects(server, cached)
    check_redirects(server, stored)
    check_redirects(server, cached)
    time.sleep(0.5)  # several failed flushes at --flush-interval 0.1
    if check_log:
        assert "flush of" in server.log(), server.log()[-3000:]
    # Counted after those failures, so they join the counts that wait.
    check_redirects(server, cached)
    time.sleep(0.3)

    clear_fault()
    wait_ready(server, 200)
    after = server.create("https://example.org/after/%d" % time.monotonic_ns())
    assert after.status == 201, after
    acknowledged[after.json()["code"]] = after.json()["url"]

    # Cached links: one visit before the fault and three during it; links
    # read from the store: one during it.
    expected = {code: 4 for code in cached}
    expected.update({code: 1 for code in stored})
    assert wait_visits(server, expected) == expected
    check_redirects(server, acknowledged)

    # Everything acknowledged is on disk, not only in memory.
    assert server.stop() == 0
    server.start()
    check_redirects(server, acknowledged)
    check_redirects(server, cached)
    check_redirects(server, stored)


def set_file_size_limit(server, limit):
    """Sets the soft RLIMIT_FSIZE of the running server; the hard limit
    stays, so that raising it again needs no privilege."""
    _, hard = resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY and (limit == resource.RLIM_INFINITY or limit > hard):
        limit = hard
    resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (limit, hard))


FAULT_ARGS = ["--threads", "2", "--workers", "2", "--flush-interval", "0.1"]


def test_full_disk_gives_503_then_recovers(small_tmpfs, make_server):
    db = os.path.join(str(small_tmpfs), "shortd.db")
    server = make_server(FAULT_ARGS + ["--db", db])
    server.db = db
    server.start()
    filler = []

    def make_fault():
        filler.append(fill(small_tmpfs))

    def clear_fault():
        os.unlink(filler.pop())

    run_fault_cycle(server, make_fault, clear_fault, "No space left on device")


def test_file_size_limit_gives_503_then_recovers(make_server):
    server = make_server(FAULT_ARGS).start()

    def make_fault():
        # No write may end past the first byte of any file. A larger limit
        # would let the WAL take small commits below it, so that creates
        # would fail only now and then. The log cannot grow either.
        set_file_size_limit(server, 1)

    def clear_fault():
        set_file_size_limit(server, resource.RLIM_INFINITY)

    # SQLite reports EFBIG as a generic write error (SQLITE_IOERR_WRITE,
    # without the system errno), so that is the reason /readyz can give.
    run_fault_cycle(server, make_fault, clear_fault, "Input/output error", check_log=False)


def test_stop_under_file_size_limit_exits_zero(make_server):
    """SIGTERM while no file may grow: the final commit and checkpoint fail,
    and shortd must still exit 0 after saying so, not die of SIGXFSZ."""
    server = make_server(FAULT_ARGS).start()
    code = server.create("https://example.org/limited").json()["code"]
    assert server.request("GET", "/" + code).status == 301
    set_file_size_limit(server, 1)
    assert server.create("https://example.org/refused").status == 503
    assert server.stop() == 0, server.log()[-3000:]

    server.start()
    assert server.request("GET", "/" + code).status == 301


def test_readyz_recovers_without_client_writes(small_tmpfs, make_server):
    """Once space returns, /readyz answers 200 again by itself, although no
    client writes and no visit count waits: a load balancer that took the
    server out of rotation would otherwise never send the write that
    proves it healthy."""
    db = os.path.join(str(small_tmpfs), "shortd.db")
    server = make_server(FAULT_ARGS + ["--db", db])
    server.db = db
    server.start()
    filler = fill(small_tmpfs)
    create_until_unavailable(server, "full")
    wait_ready(server, 503)
    os.unlink(filler)
    wait_ready(server, 200)
    assert server.create("https://example.org/after").status == 201


def test_delete_on_full_disk_keeps_link(small_tmpfs, make_server):
    """A delete that cannot be committed answers 503 and the link keeps
    redirecting; a delete that got 204 answers 410 after a restart."""
    db = os.path.join(str(small_tmpfs), "shortd.db")
    server = make_server(FAULT_ARGS + ["--db", db])
    server.db = db
    server.start()
    links = {}
    for i in range(10):
        response = server.create("https://example.org/delete/%d" % i)
        links[response.json()["code"]] = "https://example.org/delete/%d" % i
    codes = sorted(links)
    auth = {"Authorization": "Bearer test-admin-key-0123456789"}
    assert server.request("DELETE", "/api/v1/links/" + codes[0], headers=auth).status == 204

    filler = fill(small_tmpfs)
    create_until_unavailable(server, "full")
    refused = 0
    for code in codes[1:]:
        response = server.request("DELETE", "/api/v1/links/" + code, headers=auth)
        if response.status == 503:
            check_unavailable(response)
            refused += 1
            assert server.request("GET", "/" + code).status == 301
        else:
            assert response.status == 204, response
            assert server.request("GET", "/" + code).status == 410
    assert refused > 0
    assert server.request("GET", "/" + codes[0]).status == 410

    os.unlink(filler)
    wait_ready(server, 200)
    for code in codes[1:]:
        response = server.request("DELETE", "/api/v1/links/" + code, headers=auth)
        assert response.status in (204, 410), response
    assert server.stop() == 0
    server.start()
    for code in codes:
        assert server.request("GET", "/" + code).status == 410, code
