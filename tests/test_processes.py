"""Threads, process creation, trees, zombies, orphans, EXITKILL, EFAULT
(issue: core, acceptance 4, 5, 6)."""
import os
import signal
import subprocess
import textwrap
import time

import pytest

from conftest import BASE_ENV, MODES, run

THREADS64 = textwrap.dedent("""
    import os, threading
    counts = [0] * 64
    def work(i):
        for _ in range(1000):
            os.getppid()
            counts[i] += 1
    ts = [threading.Thread(target=work, args=(i,)) for i in range(64)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(sum(counts), threading.active_count())
""")


@pytest.mark.parametrize("mode", list(MODES))
def test_64_threads(mode):
    r = run(mode, ["python3", "-c", THREADS64])
    assert (r.returncode, r.stdout) == (0, b"64000 1\n")


SPAWN = textwrap.dedent("""
    import os, subprocess, sys
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 5"], os.environ)
    print("posix_spawn", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
    pid = os.posix_spawnp("echo", ["echo", "spawned"], os.environ)
    os.waitpid(pid, 0)
    # subprocess uses vfork where it can
    print("subprocess", subprocess.run(["sh", "-c", "exit 6"]).returncode, flush=True)
""")


@pytest.mark.parametrize("mode", list(MODES))
def test_posix_spawn_and_subprocess(mode):
    r = run(mode, ["python3", "-c", SPAWN])
    assert r.stdout == b"posix_spawn 5\nspawned\nsubprocess 6\n"
    assert r.returncode == 0


VFORK_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>

static char stack[65536];
static int shared = 0;
static int child_fn(void *arg) { shared = 42; return 3; }

int main(void) {
    int st;
    pid_t p = vfork();
    if (p == 0) { execlp("sh", "sh", "-c", "exit 11", NULL); _exit(127); }
    waitpid(p, &st, 0);
    printf("vfork %d\n", WEXITSTATUS(st));
    p = vfork();
    if (p == 0) _exit(12);
    waitpid(p, &st, 0);
    printf("vfork-exit %d\n", WEXITSTATUS(st));
    p = clone(child_fn, stack + sizeof stack, CLONE_VM | SIGCHLD, NULL);
    waitpid(p, &st, 0);
    printf("clone-vm %d shared %d\n", WEXITSTATUS(st), shared);
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.exit_signal = SIGCHLD;
    long r = syscall(SYS_clone3, &ca, sizeof ca);
    if (r == 0) _exit(13);
    if (r < 0) { printf("clone3 refused\n"); return 0; }
    waitpid(r, &st, 0);
    printf("clone3 %d\n", WEXITSTATUS(st));
    return 0;
}
"""


@pytest.fixture(scope="module")
def vfork_prog(tmp_path_factory):
    d = tmp_path_factory.mktemp("vfork")
    (d / "v.c").write_text(VFORK_C)
    subprocess.run(["gcc", "-O1", "-o", str(d / "v"), str(d / "v.c")], check=True)
    os.chmod(d, 0o755)
    return str(d / "v")


@pytest.mark.parametrize("mode", list(MODES))
def test_vfork_clone_clone3(mode, vfork_prog):
    native = run("native", [vfork_prog])
    r = run(mode, [vfork_prog])
    assert r.stdout == native.stdout == (
        b"vfork 11\nvfork-exit 12\nclone-vm 3 shared 42\nclone3 13\n")
    assert r.returncode == 0


TREE = textwrap.dedent("""
    import os, sys
    depth = int(sys.argv[1])
    if depth < 5:
        pid = os.fork()
        if pid == 0:
            os.execvp(sys.executable, [sys.executable, sys.argv[0], str(depth + 1)])
        _, st = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(st)
        print("level", depth, "child said", code, flush=True)
        sys.exit(code + 1)
    sys.exit(10)
""")


@pytest.mark.parametrize("mode", list(MODES))
def test_process_tree_5_levels(mode, tmp_path):
    prog = tmp_path / "tree.py"
    prog.write_text(TREE)
    r = run(mode, ["python3", str(prog), "0"])
    assert r.stdout.decode().split("\n")[:-1] == [
        "level %d child said %d" % (d, 10 + 4 - d) for d in range(4, -1, -1)]
    assert r.returncode == 15


ZOMBIE = textwrap.dedent("""
    import os
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    # the child is a zombie until we reap it
    while True:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        os.sched_yield()
    print("zombie", state)
    _, st = os.waitpid(pid, 0)
    print("reaped", os.waitstatus_to_exitcode(st), os.path.exists("/proc/%d" % pid))
""")


@pytest.mark.parametrize("mode", list(MODES))
def test_zombies_reaped(mode):
    r = run(mode, ["python3", "-c", ZOMBIE])
    assert r.stdout == b"zombie Z\nreaped 3 False\n"


@pytest.mark.parametrize("mode", list(MODES))
def test_orphans_finish(mode):
    # the orphan's parent exits first; the orphan still runs to its end and writes
    cmd = "(sh -c 'sleep 0.3; echo orphan-done' &); echo parent-done"
    r = run(mode, ["sh", "-c", cmd])
    assert r.stdout == b"parent-done\norphan-done\n"
    assert r.returncode == 0


def _session_procs(sid):
    alive = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(d))
    return alive


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_kill9_umvu_leaves_no_guest(mode):
    p = subprocess.Popen(MODES[mode] + ["sh", "-c", "sleep 300 & sleep 300 & echo up; wait"],
                         stdout=subprocess.PIPE, env=BASE_ENV, start_new_session=True)
    assert p.stdout.readline() == b"up\n"
    assert len(_session_procs(p.pid)) >= 4  # umvu, sh, two sleeps
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 1.0
    while _session_procs(p.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _session_procs(p.pid) == []


EFAULT = textwrap.dedent("""
    import ctypes, errno, os, struct, threading
    libc = ctypes.CDLL(None, use_errno=True)
    bad = ctypes.c_void_p(8)
    out = []
    # umvu's virtual syscalls need the knock first (README): SIGURG, SI_QUEUE, the cookie
    info = ctypes.create_string_buffer(128)
    struct.pack_into("iii4xiiQ", info, 0, 23, 0, -1, os.getpid(), os.getuid(),
                     0x756d76756b6e6f63)
    libc.syscall(297, os.getpid(), threading.get_native_id(), 23, info)
    for name, nr, args in [("stat", 4, (bad, bad)), ("openat", 257, (-100, bad, 0)),
                           ("write", 1, (1, bad, 10)), ("uname", 63, (bad,)),
                           ("getcwd", 79, (bad, 100)),
                           ("vu_rmmod", -2, (bad,)), ("vu_insmod", -1, (bad, 0))]:
        ctypes.set_errno(0)
        r = libc.syscall(nr, *args)
        out.append("%s %d %s" % (name, r, errno.errorcode.get(ctypes.get_errno())))
    print("\\n".join(out))
""")


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_bad_pointer_gets_efault(mode):
    native = run("native", ["python3", "-c", EFAULT]).stdout.decode().splitlines()
    guest = run(mode, ["python3", "-c", EFAULT]).stdout.decode().splitlines()
    # real syscalls: exactly the kernel's answer
    assert guest[:5] == native[:5]
    assert all(line.endswith("EFAULT") for line in native[:5])
    # virtual syscalls: EFAULT under umvu (natively they do not exist)
    assert guest[5:] == ["vu_rmmod -1 EFAULT", "vu_insmod -1 EFAULT"]
    assert native[5:] == ["vu_rmmod -1 ENOSYS", "vu_insmod -1 ENOSYS"]


def test_pin_keeps_every_guest_on_one_cpu():
    cpu = sorted(os.sched_getaffinity(0))[-1]
    r = run("umvu", ["sh", "-c", "grep Cpus_allowed_list /proc/self/status; "
                     "sh -c 'grep Cpus_allowed_list /proc/self/status'"],
            umvu_opts=("--cpu", str(cpu)))
    assert r.stdout.decode().split() == ["Cpus_allowed_list:", str(cpu)] * 2
    r = run("umvu", ["true"], umvu_opts=("--cpu", "100000"))
    assert r.returncode == 2 and b"cannot pin" in r.stderr
