"""Benchmark of shortd import: links per second for a large file.

Generates LINES lines of "code<TAB>url" (default one million), imports them
RUNS times (default 3), each time into a new database, and prints each run
and the median. Codes are random 7-character base62 strings, like the codes
shortd generates, so the code index sees inserts all over its key range.
URLs are the 100,000 URLs of tests/data/urls-debian.txt.xz; each pass over
the corpus after the first adds a path segment and a query parameter of its
own, so that every URL differs. The 15 corpus URLs that shortd rejects stay
in, so each pass over the corpus has 15 rejected lines.

Run from the repository root after make:

    /usr/bin/python3 bench/import.py [--lines N] [--runs N] [--binary PATH]
                                     [--folder DIR] [--keep FILE]

The file and the databases go into a new folder under --folder (default
/tmp) that is removed at the end. Put it on the disk to measure: the import
syncs each batch, and on tmpfs a sync costs nothing. Wall time is measured
around the process; CPU time is its user plus system time, which shows how
much the two threads of an import overlap.
"""

import argparse
import lzma
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def load_corpus():
    path = os.path.join(ROOT, "tests", "data", "urls-debian.txt.xz")
    with lzma.open(path, "rt", encoding="utf-8", newline="\n") as f:
        return f.read().split("\n")[:-1]


def vary(url, number, rng):
    """Returns url with a path segment and a query parameter that depend on number."""
    cut = len(url)
    for mark in "?#":
        index = url.find(mark, url.find("://") + 3)
        if index >= 0:
            cut = min(cut, index)
    head, tail = url[:cut], url[cut:]
    if head.count("/") < 3:
        head += "/"
    head = head.rstrip("/") + "/v%d" % number
    if tail.startswith("?"):
        return "%s?ref=%d&%s" % (head, rng.randrange(1000000), tail[1:])
    return "%s?ref=%d%s" % (head, rng.randrange(1000000), tail)


def write_lines(path, count, seed=1):
    corpus = load_corpus()
    rng = random.Random(seed)
    codes = set()
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for i in range(count):
            code = "".join(rng.choice(ALPHABET) for _ in range(7))
            while code in codes:
                code = "".join(rng.choice(ALPHABET) for _ in range(7))
            codes.add(code)
            passes, index = divmod(i, len(corpus))
            url = corpus[index] if passes == 0 else vary(corpus[index], passes, rng)
            f.write("%s\t%s\n" % (code, url))


def import_once(binary, source, db):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHORTD_")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    result = subprocess.run([binary, "import", "--db", db, "--base-url", "http://short.test",
                             source], stdin=subprocess.DEVNULL, capture_output=True, env=env)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = result.stderr.decode("utf-8", "replace").strip().split("\n")[-1]
    match = re.match(r"^shortd import: imported (\d+),", summary)
    if result.returncode != 0 or not match:
        sys.exit("shortd import failed with status %d: %s" % (result.returncode, summary))
    return wall, cpu, int(match.group(1)), summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1000000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "shortd"))
    parser.add_argument("--folder", default="/tmp")
    parser.add_argument("--keep", help="also copy the generated file here")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="shortd-import-bench-", dir=args.folder)
    try:
        source = os.path.join(folder, "links.tsv")
        start = time.monotonic()
        write_lines(source, args.lines)
        print("generated %d lines (%.1f MB) in %.1f s" % (
            args.lines, os.path.getsize(source) / 1e6, time.monotonic() - start))
        if args.keep:
            shutil.copyfile(source, args.keep)

        walls = []
        for run in range(1, args.runs + 1):
            db = os.path.join(folder, "run%d" % run, "shortd.db")
            wall, cpu, imported, summary = import_once(args.binary, source, db)
            walls.append(wall)
            print("run %d: %.2f s wall, %.2f s CPU, %.0f links/s (%s)" % (
                run, wall, cpu, imported / wall, summary))
            shutil.rmtree(os.path.dirname(db))
        median = statistics.median(walls)
        print("median: %.2f s, %.0f links/s" % (median, imported / median))
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
