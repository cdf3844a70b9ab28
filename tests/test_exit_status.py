"""Exit statuses and signals are exactly the guest's (issue: core, acceptance 1)."""
import signal
import subprocess
import textwrap

import pytest

from conftest import BASE_ENV, MODES, run

CASES = [
    (["true"], 0),
    (["false"], 1),
    (["sh", "-c", "exit 3"], 3),
    (["sh", "-c", "kill -9 $$"], 137),
    (["sh", "-c", "kill -TERM $$"], 143),
    (["sh", "-c", "exit 255"], 255),
]


@pytest.mark.parametrize("argv,status", CASES, ids=[" ".join(c[0]) for c in CASES])
@pytest.mark.parametrize("mode", list(MODES))
def test_exit_status(mode, argv, status):
    native = run("native", argv)
    # natively a signal death shows as a negative returncode; a shell reports 128+N
    native_status = 128 - native.returncode if native.returncode < 0 else native.returncode
    assert native_status == status
    r = run(mode, argv).returncode
    assert (128 - r if r < 0 else r) == status


def test_missing_command_is_127(guest_mode):
    r = run(guest_mode, ["/nonexistent/command"])
    assert r.returncode == 127
    assert b"No such file" in r.stderr


HANDLER = textwrap.dedent("""
    import os, signal, sys, time
    got = []
    signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    os.kill(os.getpid(), signal.SIGTERM)
    print("handled", got)
    sys.stdout.flush()
    # now wait for one signal from outside, and report how many arrived
    signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    print("ready", flush=True)
    while len(got) < 2:
        signal.pause()
    time.sleep(0.2)
    print("count", got.count(signal.SIGUSR1), flush=True)
""")


@pytest.mark.parametrize("mode", list(MODES))
def test_guest_signal_handler_and_outside_signal_once(mode):
    prefix = MODES[mode]
    p = subprocess.Popen(prefix + ["python3", "-c", HANDLER], stdout=subprocess.PIPE,
                         env=BASE_ENV)
    assert p.stdout.readline() == b"handled [%d]\n" % signal.SIGTERM
    assert p.stdout.readline() == b"ready\n"
    # the guest is python3: umvu's child (or our child natively)
    guest_pid = p.pid if mode == "native" else _only_child(p.pid)
    import os
    os.kill(guest_pid, signal.SIGUSR1)
    out, _ = p.communicate(timeout=60)
    assert out == b"count 1\n"
    assert p.returncode == 0


def _only_child(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        kids = f.read().split()
    assert len(kids) == 1
    return int(kids[0])
