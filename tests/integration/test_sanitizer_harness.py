"""The sanitizer options that shortd.py gives every server make a report
stop the process with SANITIZER_EXIT, and find_sanitizer_report finds it in
the log. Each case builds a small faulty program with the same sanitizer
flags as the Makefile, so it checks the options, not shortd."""

import os
import shutil
import subprocess

import pytest

from shortd import SANITIZER_EXIT, find_sanitizer_report, sanitizer_env

PROGRAMS = {
    "heap_overflow": ("address,undefined", r"""
#include <stdlib.h>
#include <unistd.h>
int main(void)
{
    char *p = malloc(8);
    p[8] = 1;
    sleep(30); /* a server would go on running */
    free(p);
    return 0;
}
"""),
    "signed_overflow": ("address,undefined", r"""
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    int x = INT_MAX - 1 + argc; /* argc is 1, so this is INT_MAX */
    x += argc;
    sleep(30);
    return x == 0;
}
"""),
    "leak": ("address,undefined", r"""
#include <stdlib.h>
void *kept;
int main(void)
{
    kept = malloc(64);
    kept = NULL;
    return 0;
}
"""),
    "data_race": ("thread", r"""
#include <pthread.h>
#include <unistd.h>
static int counter;
static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++)
        counter++;
    return NULL;
}
int main(void)
{
    pthread_t a, b;
    pthread_create(&a, NULL, bump, NULL);
    pthread_create(&b, NULL, bump, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    sleep(30);
    return counter == 0;
}
"""),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_sanitizer_report_ends_process(tmp_path, name):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the faulty program")
    sanitize, source = PROGRAMS[name]
    (tmp_path / "faulty.c").write_text(source)
    binary = tmp_path / "faulty"
    subprocess.run([compiler, "-g", "-O0", "-pthread", "-fsanitize=" + sanitize,
                    "-fno-sanitize-recover=all", str(tmp_path / "faulty.c"), "-o", str(binary)],
                   check=True)

    env = {k: v for k, v in os.environ.items() if not k.endswith("SAN_OPTIONS")}
    result = subprocess.run([str(binary)], env=sanitizer_env(env), capture_output=True,
                            text=True, timeout=25)
    assert result.returncode == SANITIZER_EXIT, (result.returncode, result.stderr[-2000:])
    assert find_sanitizer_report(result.stderr) is not None, result.stderr[-2000:]


def test_clean_log_has_no_report():
    log = ('ts=2026-12-04T20:54:10.706Z level=info component=main msg="shortd 0.1.0 started"\n'
           'ts=2026-12-04T20:54:11.000Z level=error component=store msg="commit failed: '
           'disk full"\n')
    assert find_sanitizer_report(log) is None
