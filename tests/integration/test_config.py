"""Configuration by flag, environment and file, and the command line."""

import os
import re
import subprocess

from shortd import BINARY, find_sanitizer_report, sanitizer_env


def run(args, env=None, timeout=10):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHORTD_")}
    full_env.update(env or {})
    result = subprocess.run([BINARY] + args, env=sanitizer_env(full_env), capture_output=True,
                            text=True, timeout=timeout)
    report = find_sanitizer_report(result.stderr)
    assert report is None, report
    return result


def test_help_lists_every_setting():
    result = run(["--help"])
    assert result.returncode == 0
    for flag, env in [("--listen", "SHORTD_LISTEN"), ("--db", "SHORTD_DB"),
                      ("--base-url", "SHORTD_BASE_URL"), ("--threads", "SHORTD_THREADS"),
                      ("--cache-size", "SHORTD_CACHE_SIZE"),
                      ("--max-connections", "SHORTD_MAX_CONNECTIONS"),
                      ("--config", "SHORTD_CONFIG")]:
        assert flag in result.stdout, flag
        assert env in result.stdout, env
    assert "SHORTD_ADMIN_KEY" in result.stdout
    assert "default 127.0.0.1:8080" in result.stdout
    assert "default ./data/shortd.db" in result.stdout
    assert "default 256M" in result.stdout


def test_version():
    result = run(["--version"])
    assert result.returncode == 0
    assert re.fullmatch(r"shortd \d+\.\d+\.\d+\n", result.stdout)


def test_bad_values_exit_2_with_reason():
    cases = [
        (["--threads", "zero"], "--threads"),
        (["--threads", "0"], "out of range"),
        (["--cache-size", "12Q"], "--cache-size"),
        (["--redirect-status", "303"], "301, 302, 307 or 308"),
        (["--listen", "8080"], "HOST:PORT"),
        (["--no-such-flag"], "unknown option --no-such-flag"),
        (["--admin-key", "secret-secret-secret"], "SHORTD_ADMIN_KEY"),
        (["--threads"], "needs a value"),
        (["stray"], "unexpected argument"),
    ]
    for args, fragment in cases:
        result = run(args)
        assert result.returncode == 2, (args, result)
        assert fragment in result.stderr, (args, result.stderr)


def test_bad_environment_value_named():
    result = run([], env={"SHORTD_MAX_CONNECTIONS": "lots"})
    assert result.returncode == 2
    assert "SHORTD_MAX_CONNECTIONS" in result.stderr


def test_short_admin_key_rejected():
    result = run([], env={"SHORTD_ADMIN_KEY": "short"})
    assert result.returncode == 2
    assert "16" in result.stderr
    assert "short" not in result.stderr.replace("shortd", "")


def test_config_file_errors_name_the_line(tmp_path):
    path = tmp_path / "shortd.conf"
    path.write_text("# comment\nthreads = 2\nnonsense = 1\nworkers two\n")
    result = run(["--config", str(path)])
    assert result.returncode == 2
    assert "%s:3" % path in result.stderr
    assert "%s:4" % path in result.stderr


def test_precedence_flag_over_env_over_file(make_server, tmp_path):
    config = tmp_path / "shortd.conf"
    config.write_text("redirect-status = 307\nbase-url = http://file.test\n")

    server = make_server(env={"SHORTD_CONFIG": str(config)}).start()
    link = server.create("https://example.org/a").json()
    assert link["redirect_status"] == 307
    server.stop()

    server = make_server(env={"SHORTD_CONFIG": str(config),
                              "SHORTD_REDIRECT_STATUS": "302"}).start()
    assert server.create("https://example.org/b").json()["redirect_status"] == 302
    server.stop()

    server = make_server(["--redirect-status", "308"],
                         env={"SHORTD_CONFIG": str(config),
                              "SHORTD_REDIRECT_STATUS": "302"}).start()
    assert server.create("https://example.org/c").json()["redirect_status"] == 308
    server.stop()


def test_admin_key_from_file(make_server, tmp_path):
    key_file = tmp_path / "admin.key"
    key_file.write_text("file-admin-key-abcdefgh\n")
    server = make_server(env={"SHORTD_ADMIN_KEY_FILE": str(key_file)}, admin_key=None).start()
    code = server.create("https://example.org/k").json()["code"]
    response = server.request("DELETE", "/api/v1/links/" + code,
                              headers={"Authorization": "Bearer file-admin-key-abcdefgh"})
    assert response.status == 204
    assert "file-admin-key" not in server.log()


def test_start_line_and_busy_port(make_server, tmp_path):
    first = make_server().start()
    log = first.log()
    assert "level=info" in log
    assert "started" in log and "store=" in log and "threads=" in log

    result = run(["--listen", "127.0.0.1:%d" % first.port, "--db", str(tmp_path / "other.db")])
    assert result.returncode == 1
    assert "address" in result.stderr.lower() or "in use" in result.stderr.lower()


def test_unwritable_database_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run(["--db", str(blocker / "shortd.db"), "--listen", "127.0.0.1:0"])
    assert result.returncode == 1
    assert "store" in result.stderr
    assert str(blocker) in result.stderr


def test_sigint_stops_with_status_0(make_server):
    server = make_server().start()
    assert server.stop(2) == 0
    assert "stopped" in server.log()
