"""shortd import and shortd export against the real binary.

The tests cover every kind of rejected line with its exact message, codes
taken in the store or earlier in the file, CRLF files, long lines, standard
input and progress on a terminal. They also cover the lock against a running
daemon, export beside a running daemon, a round trip through export and
import, and the 100,000 URLs of the test corpus served after an import."""

import os
import re
import subprocess

import pytest

from shortd import ADMIN_KEY, BINARY, get_requests, load_corpus, run_parallel
from test_corpus import EXPECTED_CHANGES, EXPECTED_REJECTIONS

BASE_URL = "http://short.test"
SUMMARY = re.compile(r"^shortd import: imported (\d+), skipped (\d+), rejected (\d+) of (\d+) "
                     r"lines in \d+\.\d\d s \(\d+ lines/s\)$")


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def run(*args, stdin=None, timeout=300):
    """Runs shortd with args and returns the completed process; stdin is bytes or None."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHORTD_")}
    return subprocess.run([BINARY] + [str(a) for a in args], input=stdin,
                          stdin=subprocess.DEVNULL if stdin is None else None,
                          capture_output=True, env=env, timeout=timeout)


def run_import(db, source, *args, stdin=None):
    return run("import", "--db", db, "--base-url", BASE_URL, *args, source, stdin=stdin)


def stderr_lines(result):
    return result.stderr.decode("utf-8", "replace").split("\n")[:-1]


def summary(result):
    """Returns (imported, skipped, rejected, lines) from the last stderr line."""
    match = SUMMARY.match(stderr_lines(result)[-1])
    assert match, result.stderr
    return tuple(int(group) for group in match.groups())


def write_lines(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def redirect_all(server, expected):
    """GETs each code of expected (a list of (code, url)) and checks its Location."""
    responses = run_parallel(server.port, get_requests([code for code, _ in expected]),
                             connections=8, window=64)
    wrong = [(code, url, r.status, r.header("location"))
             for (code, url), r in zip(expected, responses)
             if r.status != 301 or r.header("location") != url]
    assert not wrong, "%d redirects wrong, first: %r" % (len(wrong), wrong[:5])


def test_import_then_daemon_serves_every_link(make_server, tmp_path):
    server = make_server()
    lines = [
        ("plain", "https://www.debian.org/releases/bookworm/"),
        ("Query_1", "https://example.com/search?q=a%20b&lang=en#top"),
        ("with-dash", "http://127.0.0.1:8080/x"),
        ("idn", "https://b\u00fccher.example/caf\u00e9"),
        ("x", "HTTPS://Example.COM/Path/"),
    ]
    stored = [
        ("plain", "https://www.debian.org/releases/bookworm/"),
        ("Query_1", "https://example.com/search?q=a%20b&lang=en#top"),
        ("with-dash", "http://127.0.0.1:8080/x"),
        ("idn", "https://xn--bcher-kva.example/caf%C3%A9"),
        ("x", "HTTPS://Example.COM/Path/"),
    ]
    data = "".join("%s\t%s\n" % line for line in lines).encode("utf-8")
    result = run_import(server.db, write_lines(tmp_path / "links.tsv", data))

    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert len(stderr_lines(result)) == 1
    assert summary(result) == (5, 0, 0, 5)

    server.start()
    redirect_all(server, stored)
    link = server.request("GET", "/api/v1/links/idn").json()
    assert link["url"] == stored[3][1]
    assert link["short_url"] == BASE_URL + "/idn"
    assert link["redirect_status"] == 301
    assert link["expires_at"] is None

    # Codes the daemon generates afterwards never collide with the imported ids.
    created = server.create("https://example.org/after-import")
    assert created.status == 201
    assert server.request("GET", "/" + created.json()["code"]).header("location") == \
        "https://example.org/after-import"


def test_import_redirect_status_setting(make_server, tmp_path):
    server = make_server()
    path = write_lines(tmp_path / "links.tsv", b"temp\thttps://example.com/t\n")

    result = run_import(server.db, path, "--redirect-status", "307")
    assert result.returncode == 0, result.stderr

    server.start()
    response = server.request("GET", "/temp")
    assert response.status == 307
    assert response.header("location") == "https://example.com/t"


def test_import_reports_each_bad_line(make_server, tmp_path):
    server = make_server()
    long_url = "https://example.com/" + "a" * (8193 - len("https://example.com/"))
    huge_line = "huge\thttps://example.com/" + "b" * 100000
    lines = [
        b"ok1\thttps://example.com/1",                          # 1
        b"# a comment",                                           # 2
        b"",                                                      # 3
        b"no tab here",                                           # 4
        b"two\ttabs\there",                                       # 5
        b"\thttps://example.com/empty-code",                      # 6
        b"bad/code\thttps://example.com/",                        # 7
        b"c" * 65 + b"\thttps://example.com/",                    # 8
        b"API\thttps://example.com/",                             # 9
        b"ftp\tftp://example.com/",                               # 10
        b"space\thttps://example.com/a b",                        # 11
        b"loop\thttp://short.test/x",                             # 12
        b"long\t" + long_url.encode(),                            # 13
        huge_line.encode(),                                       # 14
        b"ok1\thttps://example.com/again",                        # 15
        b"crlf\thttps://example.com/crlf\r",                      # 16
        b"ok2\thttps://example.com/2\r\r",                        # 17
        b"empty-url\t",                                           # 18
        b"last\thttps://example.com/last",                        # 19, no LF
    ]
    path = write_lines(tmp_path / "bad.tsv", b"\n".join(lines))
    result = run_import(server.db, path)

    prefix = "shortd import: %s:" % path
    assert result.returncode == 0, result.stderr
    assert stderr_lines(result)[:-1] == [
        prefix + "4: malformed_line: expected code<TAB>url, but the line has no tab",
        prefix + "5: malformed_line: expected code<TAB>url, but the line has 2 tabs",
        prefix + "6: invalid_code: the code before the tab is empty",
        prefix + "7: invalid_code: code \"bad/code\" contains the byte \"/\" at offset 3, but a "
                 "code may contain only letters, digits, '-' and '_'",
        prefix + "8: invalid_code: code \"%s\" is 65 bytes long, longer than the maximum of 64 "
                 "bytes" % ("c" * 65),
        prefix + "9: reserved_code: code \"API\" is reserved for a path of the server",
        prefix + "10: unsupported_scheme: URL scheme \"ftp\" is not allowed because only http "
                 "and https URLs are accepted",
        prefix + "11: invalid_url: URL contains a space at byte offset 21, which must be "
                 "percent-encoded as %20",
        prefix + "12: redirect_loop: URL host \"short.test\" is the host of this service, so the "
                 "link would redirect to itself",
        prefix + "13: url_too_long: URL is 8193 bytes long, longer than the maximum of 8192 bytes",
        prefix + "14: line_too_long: line is %d bytes long, longer than the maximum of 8258 "
                 "bytes: a code of up to 64 bytes, a tab, a URL of up to 8192 bytes and a CR"
                 % len(huge_line),
        prefix + "15: code_taken: code \"ok1\" is already used by line 1",
        prefix + "17: invalid_url: URL contains the control character \\x0D at byte offset 21, "
                 "which must be removed or percent-encoded as %0D",
        prefix + "18: invalid_url: URL is empty, but an absolute URL such as "
                 "https://example.com/ is required",
    ]
    assert summary(result) == (3, 2, 14, 19)

    server.start()
    redirect_all(server, [("ok1", "https://example.com/1"), ("crlf", "https://example.com/crlf"),
                          ("last", "https://example.com/last")])
    for code in ("API", "ftp", "loop", "long", "huge", "ok2", "empty-url"):
        assert server.request("GET", "/" + code).status == 404, code


def test_import_reports_codes_taken_in_store(make_server, tmp_path):
    server = make_server().start()
    auth = {"Authorization": "Bearer " + ADMIN_KEY}
    assert server.create("https://example.com/same", alias="same").status == 201
    assert server.create("https://example.com/old", alias="other").status == 201
    assert server.create("https://example.com/gone", alias="gone").status == 201
    assert server.request("DELETE", "/api/v1/links/gone", headers=auth).status == 204
    assert server.stop() == 0

    path = write_lines(tmp_path / "taken.tsv",
                       b"same\thttps://example.com/same\n"
                       b"other\thttps://example.com/new\n"
                       b"gone\thttps://example.com/gone\n"
                       b"fresh\thttps://example.com/fresh\n")
    result = run_import(server.db, path)

    prefix = "shortd import: %s:" % path
    assert result.returncode == 0, result.stderr
    assert stderr_lines(result)[:-1] == [
        prefix + "1: code_taken: code \"same\" already exists in the database with the same URL",
        prefix + "2: code_taken: code \"other\" already exists in the database with a different "
                 "URL",
        prefix + "3: code_taken: code \"gone\" belongs to a deleted link in the database, and "
                 "codes of deleted links are not reused",
    ]
    assert summary(result) == (1, 0, 3, 4)

    server.start()
    assert server.request("GET", "/other").header("location") == "https://example.com/old"
    assert server.request("GET", "/gone").status == 410
    assert server.request("GET", "/fresh").header("location") == "https://example.com/fresh"


def test_import_crlf_file(make_server, tmp_path):
    server = make_server()
    path = write_lines(tmp_path / "windows.tsv",
                       b"# exported on Windows\r\n\r\nw1\thttps://example.com/1\r\n"
                       b"w2\thttps://example.com/2?x=1\r\n")
    result = run_import(server.db, path)

    assert result.returncode == 0, result.stderr
    assert summary(result) == (2, 2, 0, 4)
    server.start()
    redirect_all(server, [("w1", "https://example.com/1"), ("w2", "https://example.com/2?x=1")])


def test_import_skips_byte_order_mark(make_server, tmp_path):
    server = make_server()
    path = write_lines(tmp_path / "bom.tsv", b"\xef\xbb\xbfbom\thttps://example.com/bom\n")
    result = run_import(server.db, path)

    assert result.returncode == 0, result.stderr
    assert summary(result) == (1, 0, 0, 1)
    server.start()
    redirect_all(server, [("bom", "https://example.com/bom")])


def test_import_empty_file(make_server, tmp_path):
    server = make_server()
    result = run_import(server.db, write_lines(tmp_path / "empty.tsv", b""))

    assert result.returncode == 0, result.stderr
    assert len(stderr_lines(result)) == 1
    assert summary(result) == (0, 0, 0, 0)


def test_import_from_stdin(make_server):
    server = make_server()
    result = run_import(server.db, "-", stdin=b"in1\thttps://example.com/in\nbad\n")

    assert result.returncode == 0, result.stderr
    assert stderr_lines(result)[0] == \
        "shortd import: stdin:2: malformed_line: expected code<TAB>url, but the line has no tab"
    assert summary(result) == (1, 0, 1, 2)
    server.start()
    redirect_all(server, [("in1", "https://example.com/in")])


def test_import_counts_rejections_past_one_hundred(make_server, tmp_path):
    server = make_server()
    data = b"".join(b"bad%d\n" % i for i in range(1, 151)) + b"good\thttps://example.com/\n"
    result = run_import(server.db, write_lines(tmp_path / "many.tsv", data))

    lines = stderr_lines(result)
    assert result.returncode == 0, result.stderr
    assert len(lines) == 102
    assert lines[99].startswith("shortd import: %s:100: malformed_line:" % (tmp_path / "many.tsv"))
    assert lines[100] == "shortd import: more than 100 lines rejected; the others are only counted"
    assert summary(result) == (1, 0, 150, 151)


def test_import_usage_errors(tmp_path):
    db = tmp_path / "data" / "shortd.db"

    missing = run("import", "--db", db)
    assert missing.returncode == 2
    assert stderr_lines(missing) == ["shortd import: missing FILE; see shortd import --help"]

    other = run("import", "--db", db, "--listen", "127.0.0.1:1", "x.tsv")
    assert other.returncode == 2
    assert stderr_lines(other) == [
        "shortd import: --listen is not a setting of shortd import; see shortd import --help"]

    no_file = run("import", "--db", db, tmp_path / "nosuch.tsv")
    assert no_file.returncode == 1
    assert stderr_lines(no_file) == [
        "shortd import: cannot open %s: No such file or directory" % (tmp_path / "nosuch.tsv")]
    assert not db.exists()

    bad_base = run("import", "--db", db, "--base-url", "ftp://x", "-")
    assert bad_base.returncode == 2

    help_text = run("import", "--help")
    assert help_text.returncode == 0
    assert help_text.stdout.startswith(b"Usage: shortd import [OPTION...] FILE\n")

    no_db = run("export", "--db", tmp_path / "nosuch.db")
    assert no_db.returncode == 1
    assert stderr_lines(no_db) == [
        "shortd export: cannot open database %s: No such file or directory"
        % (tmp_path / "nosuch.db")]
    assert not (tmp_path / "nosuch.db").exists()

    daemon_help = run("--help")
    assert b"\n       shortd import [OPTION...] FILE\n" in daemon_help.stdout
    assert b"\n       shortd export [OPTION...] [FILE]\n" in daemon_help.stdout


def test_import_refused_while_daemon_runs(make_server, tmp_path):
    server = make_server().start()
    path = write_lines(tmp_path / "links.tsv", b"locked\thttps://example.com/\n")
    result = run_import(server.db, path)

    assert result.returncode == 1
    assert stderr_lines(result) == [
        "shortd import: database %s is in use by a running shortd, which holds the lock on "
        "%s.lock; stop it before importing, or import into another database"
        % (server.db, server.db)]
    assert server.request("GET", "/locked").status == 404

    # Once the daemon stops, the same import runs.
    assert server.stop() == 0
    assert run_import(server.db, path).returncode == 0


def test_export_while_daemon_runs(make_server, tmp_path):
    server = make_server().start()
    auth = {"Authorization": "Bearer " + ADMIN_KEY}
    created = []
    for i in range(5):
        response = server.create("https://example.com/live/%d" % i)
        assert response.status == 201
        created.append((response.json()["code"], response.json()["url"]))
    assert server.create("https://example.com/alias", alias="my-alias").status == 201
    created.append(("my-alias", "https://example.com/alias"))
    code = created[2][0]
    assert server.request("DELETE", "/api/v1/links/" + code, headers=auth).status == 204
    del created[2]

    result = run("export", "--db", server.db)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join("%s\t%s\n" % link for link in created).encode()
    assert re.match(r"^shortd export: exported 5 links in \d+\.\d\d s$",
                    stderr_lines(result)[0]), result.stderr

    out = tmp_path / "out.tsv"
    to_file = run("export", "--db", server.db, out)
    assert to_file.returncode == 0, to_file.stderr
    assert out.read_bytes() == result.stdout
    assert server.request("GET", "/my-alias").status == 301


def test_export_import_round_trip(make_server, tmp_path, corpus):
    first = make_server(folder=tmp_path / "first")
    second = make_server(folder=tmp_path / "second")
    data = "".join("r%05d\t%s\n" % (i, url) for i, url in enumerate(corpus[:5000])).encode()
    data += "odd\thttps://b\u00fccher.example/\u00e4?q=\u00f6|x\n".encode()
    result = run_import(first.db, write_lines(tmp_path / "in.tsv", data))
    assert result.returncode == 0, result.stderr

    exported = run("export", "--db", first.db)
    assert exported.returncode == 0, exported.stderr
    result = run_import(second.db, "-", stdin=exported.stdout)
    assert result.returncode == 0, result.stderr
    assert summary(result)[2] == 0
    again = run("export", "--db", second.db)
    assert again.returncode == 0, again.stderr
    assert again.stdout == exported.stdout

    lines = exported.stdout.decode().split("\n")[:-1]
    assert lines[-1] == "odd\thttps://xn--bcher-kva.example/%C3%A4?q=%C3%B6%7Cx"
    assert len(lines) == summary(result)[0]


def test_import_corpus_then_redirects(make_server, tmp_path, corpus):
    server = make_server(["--threads", "2", "--workers", "4"])
    codes = ["c%06d" % (i + 1) for i in range(len(corpus))]
    data = "".join("%s\t%s\n" % pair for pair in zip(codes, corpus)).encode("utf-8")
    path = write_lines(tmp_path / "corpus.tsv", data)
    result = run_import(server.db, path)

    assert result.returncode == 0, result.stderr
    rejected = {}
    for line in stderr_lines(result)[:-1]:
        match = re.match(r"^shortd import: %s:(\d+): (\w+): " % re.escape(path), line)
        assert match, line
        rejected[corpus[int(match.group(1)) - 1]] = match.group(2)
    assert rejected == EXPECTED_REJECTIONS
    assert summary(result) == (len(corpus) - len(EXPECTED_REJECTIONS), 0,
                               len(EXPECTED_REJECTIONS), len(corpus))

    expected = [(code, EXPECTED_CHANGES.get(url, url)) for code, url in zip(codes, corpus)
                if url not in EXPECTED_REJECTIONS]
    server.start()
    redirect_all(server, expected)
    assert server.stop() == 0


def test_import_progress_on_terminal(make_server, tmp_path):
    """With stderr on a terminal, progress lines are drawn with CR and erased
    before each report, so the reports and the summary stay whole lines."""
    import pty

    server = make_server()
    data = b"bad line\n" + b"".join(b"t%06d\thttps://example.com/%d\n" % (i, i)
                                    for i in range(200000)) + b"also bad\n"
    path = write_lines(tmp_path / "tty.tsv", data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHORTD_")}
    controller, terminal = pty.openpty()
    process = subprocess.Popen([BINARY, "import", "--db", server.db, "--base-url", BASE_URL, path],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal,
                               env=env)
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO once the process closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(timeout=120) == 0

    # The terminal turns each LF into CRLF; progress lines start with CR and end with ESC [ K.
    text = output.decode().replace("\r\n", "\n")
    progress = re.compile(r"\rshortd import: \d+ lines, \d+ lines/s\x1b\[K")
    text = progress.sub("", text).replace("\r\x1b[K", "")
    lines = text.split("\n")[:-1]
    assert lines[:-1] == [
        "shortd import: %s:1: malformed_line: expected code<TAB>url, but the line has no tab" % path,
        "shortd import: %s:200002: malformed_line: expected code<TAB>url, but the line has no tab"
        % path,
    ]
    assert SUMMARY.match(lines[-1]), lines[-1]
