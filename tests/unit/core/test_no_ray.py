"""core (and the policies on it) import nothing from Ray: the simulator and the tests use them in any process.

Checked in a fresh interpreter, because this test session has imported Ray long before.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

RAY_FREE = [
    "raysched.core",
    "raysched.core.names",
    "raysched.core.numbers",
    "raysched.core.ring",
    "raysched.core.view",
    "raysched.policies",
]


@pytest.mark.parametrize("module", RAY_FREE)
def test_importing_does_not_import_ray(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]", f"importing {module} imported Ray: {done.stdout.strip()[:200]}"
