"""scripts/crash-test with 3 cycles: SIGKILL at random moments under mixed
load loses no acknowledged create or delete and leaves a sound database.
Run the script itself for longer runs (20 cycles by default)."""

import os
import subprocess
import sys

from shortd import BINARY

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "crash-test")


def test_crash_test_three_cycles(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, "--cycles", "3", "--binary", BINARY,
                             "--folder", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "crash-test: passed" in result.stdout, result.stdout[-3000:]
    assert result.stdout.count("; ok\n") == 3, result.stdout
