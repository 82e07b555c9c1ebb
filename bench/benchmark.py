"""Redirect benchmark: shortd against nginx serving the same links with a map.

Both servers run pinned to CPU 0 and wrk runs pinned to CPU 1, so the
server's CPU time per request can be read from /proc without the load
generator in it. Every figure is the median of --runs runs measured in the
same session, one server after the other, so that a noisy neighbour affects
both alike. The results and the exact commands go to docs/benchmarks.md.

nginx's map matches strings ignoring case (its documentation says so), so
the generated codes are unique ignoring case: both servers then serve
exactly the same mapping for every code the benchmark requests.
"""

import argparse
import lzma
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORTD = os.path.join(ROOT, "build", "shortd")
CORPUS = os.path.join(ROOT, "tests", "data", "urls-debian.txt.xz")
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# URLs nginx can take as a map value without quoting problems.
PLAIN_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9/._~?=&+,;:@!()*-]*)?$")


def log(message):
    print("bench: " + message, file=sys.stderr, flush=True)


def run(command, **kwargs):
    return subprocess.run(command, check=True, **kwargs)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_port(port, deadline=30.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.005)
    raise RuntimeError("nothing listens on port %d" % port)


def http_get_status(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]) if data else 0


def http_get_location(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"location:"):
            return line.split(b":", 1)[1].strip().decode()
    return None


# ---- data ----

def generate_links(count, path, seed=1):
    """Writes count lines of code<TAB>url and returns the total URL bytes."""
    with lzma.open(CORPUS, "rt", encoding="utf-8") as f:
        urls = [u for u in f.read().split("\n") if PLAIN_URL.match(u)]
    rng = random.Random(seed)
    seen = set()
    total = 0
    with open(path, "w") as out:
        written = 0
        while written < count:
            code = "".join(rng.choice(ALPHABET) for _ in range(7))
            if code.lower() in seen:
                continue
            seen.add(code.lower())
            base = urls[rng.randrange(len(urls))]
            if "?" in base:
                url = "%s&v=%d" % (base, written)
            else:
                url = "%s/%d" % (base.rstrip("/"), written)
            out.write("%s\t%s\n" % (code, url))
            total += len(url)
            written += 1
    return total


def write_codes(links_path, codes_path):
    with open(links_path) as src, open(codes_path, "w") as dst:
        for line in src:
            dst.write("/" + line.split("\t", 1)[0] + "\n")


def write_lua(work):
    random_lua = os.path.join(work, "random.lua")
    with open(random_lua, "w") as f:
        f.write("""local codes = {}
for line in io.lines("%s") do codes[#codes + 1] = line end
math.randomseed(%d)
request = function()
  return wrk.format("GET", codes[math.random(#codes)])
end
""" % (os.path.join(work, "codes.txt"), 42))
    pipeline_lua = os.path.join(work, "pipeline.lua")
    with open(pipeline_lua, "w") as f:
        # The batches are built once, so that wrk's Lua work per request is
        # small and wrk can send faster than the server responds. They are
        # built in init, because wrk sets the Host header that wrk.format
        # adds only after the script is loaded.
        f.write("""local codes = {}
for line in io.lines("%s") do codes[#codes + 1] = line end
math.randomseed(43)
local batches = {}
init = function(args)
  for b = 1, 4096 do
    local batch = {}
    for i = 1, 16 do batch[i] = wrk.format("GET", codes[math.random(#codes)]) end
    batches[b] = table.concat(batch)
  end
end
local next_batch = 0
request = function()
  next_batch = next_batch %% #batches + 1
  return batches[next_batch]
end
""" % os.path.join(work, "codes.txt"))
    warm_lua = os.path.join(work, "warm.lua")
    with open(warm_lua, "w") as f:
        f.write("""local codes = {}
for line in io.lines("%s") do codes[#codes + 1] = line end
local next_index = 0
local thread_count = 0
setup = function(thread) thread:set("offset", thread_count); thread_count = thread_count + 1 end
init = function(args) next_index = offset end
request = function()
  next_index = next_index + 1
  if next_index > #codes then next_index = 1 end
  return wrk.format("GET", codes[next_index])
end
""" % os.path.join(work, "codes.txt"))
    create_lua = os.path.join(work, "create.lua")
    with open(create_lua, "w") as f:
        f.write("""local counter = 0
local prefix = tostring(os.time())
request = function()
  counter = counter + 1
  local body = '{"url": "https://example.org/bench/' .. prefix .. '/' .. counter .. '"}'
  return wrk.format("POST", "/api/v1/links",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %s"}, body)
end
""" % ADMIN_KEY)
    return random_lua, pipeline_lua, warm_lua, create_lua


ADMIN_KEY = "bench-admin-key-0123456789abcdef"
# Some corpus URLs point at 127.0.0.1; with another base URL they are not
# links to the server itself.
BASE_URL = "https://sho.rt"
# Creates wait for a durable commit, so each connection has one in flight;
# more connections make larger group commits.
CREATE_CONNECTIONS = 256


def write_nginx_config(work, links_path, port):
    map_path = os.path.join(work, "nginx-map.conf")
    with open(links_path) as src, open(map_path, "w") as dst:
        for line in src:
            code, url = line.rstrip("\n").split("\t", 1)
            dst.write('"/%s" "%s";\n' % (code, url))
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1;
daemon off;
error_log %(work)s/nginx-error.log;
pid %(work)s/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    map_hash_max_size 33554432;
    map_hash_bucket_size 128;
    map $uri $target {
        default "";
        include %(map)s;
    }
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            if ($target = "") { return 404; }
            return 301 $target;
        }
    }
}
""" % {"work": work, "map": map_path, "port": port})
    return conf


# ---- servers ----

class Nginx:
    name = "nginx"

    def __init__(self, work, conf, port):
        self.work, self.conf, self.port = work, conf, port
        self.process = None

    def start(self):
        self.process = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", self.conf],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 300)
        # The master listens before it forks its worker, which serves every
        # request, so the worker may not exist yet.
        deadline = time.monotonic() + 60
        while True:
            children = subprocess.run(["pgrep", "-P", str(self.process.pid)],
                                      capture_output=True, text=True).stdout.split()
            if children:
                break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("nginx started no worker; see %s/nginx-error.log" % self.work)
            time.sleep(0.05)
        self.pid = int(children[0])

    def stop(self):
        self.process.send_signal(signal.SIGQUIT)
        self.process.wait(60)


class Shortd:
    name = "shortd"

    def __init__(self, work, db, port, extra=()):
        self.work, self.db, self.port, self.extra = work, db, port, list(extra)
        self.process = None
        self.ready_seconds = None

    def start(self):
        env = dict(os.environ, SHORTD_ADMIN_KEY=ADMIN_KEY)
        command = ["taskset", "-c", "0", SHORTD, "--listen", "127.0.0.1:%d" % self.port,
                   "--db", self.db, "--threads", "1", "--base-url", BASE_URL] + self.extra
        log_file = open(os.path.join(self.work, "shortd.log"), "ab")
        started = time.monotonic()
        self.process = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file)
        log_file.close()
        # Ready: /readyz answers 200, which needs the store to answer.
        while True:
            try:
                if http_get_status(self.port, "/readyz") == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError("shortd exited; see %s/shortd.log" % self.work)
            time.sleep(0.002)
        self.ready_seconds = time.monotonic() - started
        self.pid = self.process.pid

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)


# ---- load ----

def wrk(port, script, seconds, connections=64, threads=1):
    command = ["taskset", "-c", "1", "wrk", "-t%d" % threads, "-c%d" % connections,
               "-d%ds" % seconds, "--latency", "-s", script, "http://127.0.0.1:%d/" % port]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = {"command": " ".join(command)}
    match = re.search(r"(\d+) requests in", out)
    result["requests"] = int(match.group(1)) if match else 0
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(match.group(1)) if match else 0.0
    for label, key in (("50%", "p50"), ("99%", "p99")):
        match = re.search(r"\s%s\s+([\d.]+)(us|ms|s)" % label, out)
        if match:
            value = float(match.group(1))
            result[key] = value / 1000 if match.group(2) == "us" else (
                value if match.group(2) == "ms" else value * 1000)
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = int(match.group(1)) if match else 0
    return result


def wait_idle(pid, limit=15.0):
    """Waits until the process used no CPU for half a second, or limit seconds passed."""
    deadline = time.monotonic() + limit
    ticks = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_ticks(pid)
        if now == ticks:
            return
        ticks = now


def measure(server, script, seconds, connections=64):
    # The server's CPU time includes the work that the requests leave
    # behind, such as the last flush of visit counts, and that work ends
    # before the next measurement, which may be of another server on the
    # same CPU.
    wait_idle(server.pid)
    before = cpu_ticks(server.pid)
    result = wrk(server.port, script, seconds, connections)
    wait_idle(server.pid)
    after = cpu_ticks(server.pid)
    ticks = after - before
    result["cpu_us"] = ticks * 1e6 / CLOCK_TICKS / max(result["requests"], 1)
    return result


def median(results, key):
    return statistics.median(r[key] for r in results)


# ---- main ----

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--links", type=int, default=1000000, help="links served (1000000)")
    parser.add_argument("--big-links", type=int, default=10000000,
                        help="links for the large-table run, 0 to skip (10000000)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per case (3)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per run (10)")
    parser.add_argument("--work", default="/tmp/shortd-bench", help="scratch folder")
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    args = parser.parse_args()

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    results = {"args": args, "commands": []}

    links = os.path.join(work, "links.tsv")
    log("generating %d links" % args.links)
    url_bytes = generate_links(args.links, links)
    write_codes(links, os.path.join(work, "codes.txt"))
    random_lua, pipeline_lua, warm_lua, create_lua = write_lua(work)

    db = os.path.join(work, "shortd.db")
    log("importing into shortd")
    started = time.monotonic()
    import_command = [SHORTD, "import", "--db", db, "--base-url", BASE_URL, links]
    run(import_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results["import_seconds"] = time.monotonic() - started
    results["commands"].append(" ".join(import_command))

    nginx_port, shortd_port = 18401, 18402
    conf = write_nginx_config(work, links, nginx_port)
    nginx = Nginx(work, conf, nginx_port)
    shortd = Shortd(work, db, shortd_port, ["--cache-size", "1G"])
    # The same store served without visit tracking, the work nginx does.
    untracked_db = os.path.join(work, "untracked.db")
    shutil.copyfile(db, untracked_db)
    untracked = Shortd(work, untracked_db, shortd_port + 2,
                       ["--cache-size", "1G", "--track-visits", "false"])
    untracked.name = "shortd-untracked"
    log("starting nginx (loading the map takes a while)")
    nginx.start()
    shortd.start()
    untracked.start()
    results["ready_seconds"] = shortd.ready_seconds
    servers = (nginx, shortd, untracked)

    # Both answer the same for a sample of codes.
    with open(links) as f:
        sample = [f.readline().rstrip("\n").split("\t") for _ in range(20)]
    for code, url in sample:
        for server in (nginx, shortd):
            location = http_get_location(server.port, "/" + code)
            if location != url:
                raise RuntimeError("%s sends %r for %s, expected %r" % (server.name, location,
                                                                        code, url))

    # Warm-up: every code once, so that shortd's cache holds the whole set.
    log("warming up")
    for server in servers:
        wrk(server.port, warm_lua, max(5, args.links // 60000), connections=64)

    plain = {server.name: [] for server in servers}
    piped = {server.name: [] for server in servers}
    for run_index in range(args.runs):
        log("run %d of %d" % (run_index + 1, args.runs))
        for server in servers:
            plain[server.name].append(measure(server, random_lua, args.seconds))
        for server in servers:
            piped[server.name].append(measure(server, pipeline_lua, args.seconds))
    results["plain"], results["piped"] = plain, piped
    results["rss"] = {server.name: rss_bytes(server.pid) for server in servers}
    results["url_bytes"] = url_bytes

    untracked.stop()
    log("creates")
    creates = [measure(shortd, create_lua, args.seconds, connections=CREATE_CONNECTIONS)
               for _ in range(args.runs)]
    results["creates"] = creates

    nginx.stop()
    shortd.stop()

    if args.big_links > 0:
        big_links = os.path.join(work, "big.tsv")
        log("generating %d links" % args.big_links)
        generate_links(args.big_links, big_links, seed=2)
        write_codes(big_links, os.path.join(work, "codes.txt"))
        big_db = os.path.join(work, "big.db")
        log("importing %d links" % args.big_links)
        run([SHORTD, "import", "--db", big_db, "--base-url", BASE_URL, big_links],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Each server warms its own cache, one after the other, because both
        # hold every link and two at once may not fit in memory.
        for key, extra in (("big", []), ("big_untracked", ["--track-visits", "false"])):
            big = Shortd(work, big_db, shortd_port + 1, ["--cache-size", "4G"] + extra)
            big.start()
            if key == "big":
                results["big_ready_seconds"] = big.ready_seconds
            log("warming up %d links (%s)" % (args.big_links, key))
            wrk(big.port, warm_lua, max(5, args.big_links // 60000), connections=64)
            results[key] = [measure(big, random_lua, args.seconds) for _ in range(args.runs)]
            big.stop()

    write_report(args, results)
    log("wrote %s" % args.output)


def wrk_version():
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    words = (out.stdout + out.stderr).split()
    return " ".join(words[:2]) if len(words) >= 2 else "wrk"


def fmt(value, digits=1):
    return ("%." + str(digits) + "f") % value


def write_report(args, results):
    plain, piped, creates = results["plain"], results["piped"], results["creates"]
    n_cpu = median(plain["nginx"], "cpu_us")
    s_cpu = median(plain["shortd"], "cpu_us")
    n_p99 = median(plain["nginx"], "p99")
    s_p99 = median(plain["shortd"], "p99")
    u_p99 = median(plain["shortd-untracked"], "p99")
    n_pipe = median(piped["nginx"], "rps")
    s_pipe = median(piped["shortd"], "rps")
    u_cpu = median(plain["shortd-untracked"], "cpu_us")
    u_pipe = median(piped["shortd-untracked"], "rps")
    rss_budget = results["url_bytes"] + 48 * args.links + 32 * 1024 * 1024
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nginx_version = subprocess.run(["nginx", "-v"], capture_output=True,
                                   text=True).stderr.strip()
    shortd_version = subprocess.run([SHORTD, "--version"], capture_output=True,
                                    text=True).stdout.strip()

    names = ("nginx", "shortd", "shortd-untracked")

    def row(label, key, unit, digits=1, table=None):
        table = table or plain
        cells = ["%s %s" % (fmt(median(table[name], key), digits), unit) for name in names]
        return "| %s | %s |" % (label, " | ".join(cells))

    lines = [
        "# Benchmarks",
        "",
        "Redirects of shortd against nginx serving the same %d links with a `map` and "
        "`return 301`, measured by `bench/run` in one session. Each figure is the median "
        "of %d runs of %d s; the server is pinned to CPU 0, wrk to CPU 1, with 64 "
        "keep-alive connections requesting random codes. CPU time per request is the "
        "server process's user and system time from /proc divided by the requests "
        "served, so wrk's own work is not in it. It is read when the server has been "
        "idle for half a second after the run. It therefore includes work that the "
        "requests left behind, such as the last flush of visit counts, and each run "
        "starts on an idle CPU." % (args.links, args.runs, args.seconds),
        "",
        "Machine: %s, %d CPUs, Linux %s. %s; %s; %s." % (
            model, os.cpu_count(), platform.release(), shortd_version, nginx_version,
            wrk_version()),
        "",
        "## Redirects, %d links" % args.links,
        "",
        "`shortd` runs with its defaults, counting every visit per day and referrer host and "
        "flushing the counts to SQLite every second. `shortd-untracked` serves the same "
        "store with `--track-visits false`: no counting, which is the work nginx does.",
        "",
        "| measure | nginx | shortd | shortd-untracked |",
        "|---|---|---|---|",
        row("requests per second", "rps", "", 0),
        row("p50 latency", "p50", "ms", 2),
        row("p99 latency", "p99", "ms", 2),
        row("server CPU per request", "cpu_us", "µs", 2),
        row("pipelined (16 per write) requests per second", "rps", "", 0, piped),
        row("pipelined server CPU per request", "cpu_us", "µs", 2, piped),
        "| resident memory after load | %s |" % " | ".join(
            "%s MB" % fmt(results["rss"][name] / 1048576) for name in names),
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        "| CPU per redirect at most 0.6 × nginx | %s × (untracked %s ×) | %s |" % (
            fmt(s_cpu / n_cpu, 2), fmt(u_cpu / n_cpu, 2), "yes" if s_cpu <= 0.6 * n_cpu else "no"),
        "| p99 latency no higher than nginx | %s ms vs %s ms (untracked %s ms) | %s |" % (
            fmt(s_p99, 2), fmt(n_p99, 2), fmt(u_p99, 2), "yes" if s_p99 <= n_p99 else "no"),
        "| pipelined throughput at least 3 × nginx | %s × (untracked %s ×) | %s |" % (
            fmt(s_pipe / n_pipe, 2), fmt(u_pipe / n_pipe, 2),
            "yes" if s_pipe >= 3 * n_pipe else "no"),
        "| durable creates at least 90,000 per second on one core | %s per second | %s |" % (
            fmt(median(creates, "rps"), 0), "yes" if median(creates, "rps") >= 90000 else "no"),
        "| resident memory at most URL bytes + 48 B per link + 32 MB | %s MB of %s MB | %s |" % (
            fmt(results["rss"]["shortd"] / 1048576), fmt(rss_budget / 1048576),
            "yes" if results["rss"]["shortd"] <= rss_budget else "no"),
        "| ready within 0.2 s of start | %s s | %s |" % (
            fmt(results["ready_seconds"], 3), "yes" if results["ready_seconds"] <= 0.2 else "no"),
    ]
    if "big" in results:
        b_cpu = median(results["big"], "cpu_us")
        bu_cpu = median(results["big_untracked"], "cpu_us")
        lines.append("| CPU per redirect at %d links within 1.2 × that at %d | %s × (%s µs); "
                     "untracked %s × (%s µs) | %s |" % (
                         args.big_links, args.links, fmt(b_cpu / s_cpu, 2), fmt(b_cpu, 2),
                         fmt(bu_cpu / u_cpu, 2), fmt(bu_cpu, 2),
                         "yes" if b_cpu <= 1.2 * s_cpu else "no"))
        lines.append("| ready within 0.2 s of start at %d links | %s s | %s |" % (
            args.big_links, fmt(results["big_ready_seconds"], 3),
            "yes" if results["big_ready_seconds"] <= 0.2 else "no"))
    lines += [
        "",
        "## Creates",
        "",
        "Durable creates through `POST /api/v1/links` with the admin key (not rate "
        "limited) over %d connections, each a distinct URL, answered 201 only after the "
        "group commit: median %s per second, %s µs of server CPU per create." % (
            CREATE_CONNECTIONS,
            fmt(median(creates, "rps"), 0), fmt(median(creates, "cpu_us"), 1)),
        "",
        "Import of %d links with `shortd import`: %s s." % (args.links,
                                                          fmt(results["import_seconds"], 2)),
        "",
        "## Every run",
        "",
        "| case | server | req/s | p50 ms | p99 ms | CPU µs/req | non-3xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, table in (("plain", plain), ("pipelined", piped)):
        for name in names:
            for r in table[name]:
                lines.append("| %s | %s | %s | %s | %s | %s | %d |" % (
                    case, name, fmt(r["rps"], 0), fmt(r.get("p50", 0), 2), fmt(r.get("p99", 0), 2),
                    fmt(r["cpu_us"], 2), r["errors"]))
    for r in creates:
        lines.append("| creates | shortd | %s | %s | %s | %s | %d |" % (
            fmt(r["rps"], 0), fmt(r.get("p50", 0), 2), fmt(r.get("p99", 0), 2),
            fmt(r["cpu_us"], 2), r["errors"]))
    for key, name in (("big", "shortd"), ("big_untracked", "shortd-untracked")):
        for r in results.get(key, []):
            lines.append("| %d links | %s | %s | %s | %s | %s | %d |" % (
                args.big_links, name, fmt(r["rps"], 0), fmt(r.get("p50", 0), 2),
                fmt(r.get("p99", 0), 2), fmt(r["cpu_us"], 2), r["errors"]))
    lines += [
        "",
        "## Commands",
        "",
        "```sh",
        "bench/run --links %d --big-links %d --runs %d --seconds %d" % (
            args.links, args.big_links, args.runs, args.seconds),
        "```",
        "",
        "which runs, among others:",
        "",
        "```sh",
    ]
    lines += results["commands"]
    lines += [plain["shortd"][0]["command"], piped["shortd"][0]["command"],
              creates[0]["command"], "```", ""]
    with open(args.output, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
