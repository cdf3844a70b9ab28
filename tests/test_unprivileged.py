"""umvu run by an unprivileged user (issue: core, acceptance 8).

As root (CI), a world-readable copy of the tree is run with ``runuser -u nobody``;
run by an ordinary user, the tests run as that user directly."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest



def test_runs_as_unprivileged_user(as_user):
    r = as_user(["sh", "-c", "id -u; echo $HOME"])
    assert r.returncode == 0, r.stderr
    uid, home = r.stdout.decode().split()
    assert uid != "0"
    assert int(uid) == (os.getuid() if os.getuid() else 65534)


@pytest.mark.parametrize("opts", [[], ["-S"]])
def test_unprivileged_statuses_and_pipelines(as_user, opts):
    assert as_user(opts + ["false"]).returncode == 1
    assert as_user(opts + ["sh", "-c", "kill -9 $$"]).returncode == 137
    r = as_user(opts + ["bash", "-c", "seq 1 100 | paste -sd+ | bc; "
                        "echo x > f && cat f && rm f; exit 4"])
    assert (r.returncode, r.stdout) == (4, b"5050\nx\n")


def test_unprivileged_threads_and_subprocess(as_user):
    r = as_user(["python3", "-c", "import threading, subprocess;"
                 "ts=[threading.Thread(target=subprocess.run, args=(['true'],)) "
                 "for _ in range(8)];[t.start() for t in ts];[t.join() for t in ts];"
                 "print('ok')"])
    assert (r.returncode, r.stdout) == (0, b"ok\n")


def test_setuid_runs_unprivileged_under_seccomp(as_user):
    """The README's documented difference: setuid programs run unprivileged."""
    if os.getuid() != 0:
        pytest.skip("making a setuid-root file needs root (CI runs this as root)")
    top = Path(tempfile.mkdtemp(prefix="umvu-setuid-"))
    try:
        prog = top / "id"
        shutil.copy("/usr/bin/id", prog)
        os.chmod(prog, 0o4755)
        os.chmod(top, 0o755)
        native = subprocess.run(["runuser", "-u", "nobody", "--", str(prog), "-u"],
                                capture_output=True)
        assert native.stdout == b"0\n"  # natively the setuid bit gives euid 0
        assert as_user([str(prog), "-u"]).stdout == b"65534\n"
        # -S has no seccomp filter, but an unprivileged tracer also suppresses setuid
        assert as_user(["-S", str(prog), "-u"]).stdout == b"65534\n"
    finally:
        shutil.rmtree(top)
