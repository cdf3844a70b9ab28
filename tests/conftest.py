"""Shared helpers: run the same command natively, under umvu and under umvu -S."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "bin"
UMVU = [str(BIN / "umvu")]  # the umvu program (csrc/umvu_main.c, built by setup)
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


def differential(cmd: str, tmp_path, guest_mode: str, wrap=None):
    """Run ``bash -c cmd`` natively and in guest_mode, each in a fresh ``tmp_path/w``;
    ``wrap(work, cmd)`` gives the guest's script (to mount something first). Returns
    {mode: (status, stdout)}."""
    results = {}
    for mode in ("native", guest_mode):
        work = tmp_path / "w"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
        script = cmd if mode == "native" or wrap is None else wrap(work, cmd)
        r = run(mode, ["bash", "-c", script], cwd=work, timeout=900)
        results[mode] = (r.returncode, r.stdout)
    return results


@pytest.fixture(params=GUEST_MODES)
def guest_mode(request):
    return request.param


@pytest.fixture(scope="session")
def as_user(request):
    if os.getuid() != 0:
        def run_self(argv, **kw):
            return subprocess.run([str(REPO / "bin" / "umvu")] + argv, capture_output=True,
                                  env=BASE_ENV, **kw)
        run_self.work = Path(tempfile.mkdtemp(prefix="umvu-unpriv-"))
        run_self.prefix = [str(REPO / "bin" / "umvu")]
        return run_self
    top = Path(tempfile.mkdtemp(prefix="umvu-unpriv-"))  # pytest's tmp is root-only
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    tree = top / "umvu-tree"
    shutil.copytree(REPO / "umvu", tree / "umvu",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "bin", tree / "bin", symlinks=True)
    work = top / "work"
    work.mkdir()
    for p in (top, tree, work):
        os.chmod(p, 0o755)
    subprocess.run(["chmod", "-R", "a+rX", str(tree)], check=True)
    subprocess.run(["chown", "nobody", str(work)], check=True)
    env = dict(BASE_ENV, HOME=str(work),
               PATH=BASE_ENV["PATH"].replace(str(REPO / "bin"), str(tree / "bin")))

    prefix = (["runuser", "-u", "nobody", "--", "env", "-i"]
              + ["%s=%s" % kv for kv in env.items()] + [str(tree / "bin" / "umvu")])

    def run(argv, **kw):
        return subprocess.run(prefix + argv, capture_output=True, cwd=str(work), **kw)
    run.work = work  # a directory the unprivileged user owns
    run.prefix = prefix  # "umvu" as the unprivileged user (for pexpect)
    return run




def compile_prog(tmp_path_factory, name: str, pkg: str | None = None) -> Path:
    """tests/progs/NAME.c built (gcc -O2 -Wall, with pkg-config PKG's flags if given)
    into a fresh directory: the executable."""
    exe = tmp_path_factory.mktemp("prog") / name
    flags = []
    if pkg is not None:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", pkg], check=True,
                               capture_output=True, text=True).stdout.split()
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe),
                    str(REPO / "tests/progs" / (name + ".c"))] + flags, check=True)
    return exe
