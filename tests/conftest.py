"""Shared helpers: run the same command natively, under umvu and under umvu -S."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "bin"
UMVU = [sys.executable, str(BIN / "umvu")]
MODES = {"native": [], "umvu": UMVU, "umvu-S": UMVU + ["-S"]}
GUEST_MODES = ["umvu", "umvu-S"]

# A fixed environment so outputs do not depend on who runs the tests.
BASE_ENV = {
    "PATH": "%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" % BIN,
    "LC_ALL": "C.UTF-8", "TZ": "UTC", "HOME": "/root" if os.getuid() == 0 else "/tmp",
    "TERM": "dumb",
}


def run(mode: str, argv: list[str], *, cwd=None, env=None, timeout=600,
        input: bytes | None = None, umvu_opts: tuple[str, ...] = ()):
    """Run argv in ``mode``; returns CompletedProcess with bytes stdout/stderr."""
    prefix = MODES[mode] + list(umvu_opts) if mode != "native" else []
    full_env = dict(BASE_ENV)
    if env:
        full_env.update(env)
    return subprocess.run(prefix + argv, cwd=cwd, env=full_env, input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


@pytest.fixture(params=GUEST_MODES)
def guest_mode(request):
    return request.param
