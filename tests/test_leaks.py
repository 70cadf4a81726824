"""Every path, called hundreds of thousands of times in a fresh interpreter, must not grow the heap."""

import json
import os
import subprocess
import sys

CALLS = 200_000


def test_no_path_leaks_references():
    script = os.path.join(os.path.dirname(__file__), "leak_check.py")
    out = subprocess.run(
        [sys.executable, script, str(CALLS)], check=True, capture_output=True, text=True, timeout=600
    ).stdout
    report = json.loads(out)
    assert len(report) >= 20
    leaking = {
        name: growth for name, growth in report.items() if growth[0] > 200 or growth[1] > 50
    }
    assert not leaking, f"blocks/objects grew over {CALLS} calls: {leaking}"
