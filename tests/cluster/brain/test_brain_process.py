"""The brain's actor collects garbage as a long-lived process holding every waiting task should."""

from __future__ import annotations

import json
import subprocess
import sys

from raysched.core.collector import LONG_RUN_THRESHOLDS


def test_the_brain_actor_runs_with_the_long_run_collector_thresholds(address: str) -> None:
    code = (
        "import json, ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
        "from raysched.brain.actor import brain_handle;"
        "b = brain_handle();"
        "print(json.dumps(ray.get(b.__ray_call__.remote(lambda self: __import__('gc').get_threshold()))))"
    )
    done = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, check=True)
    assert tuple(json.loads(done.stdout.strip().splitlines()[-1])) == LONG_RUN_THRESHOLDS
