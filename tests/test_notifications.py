"""Path calls the C loop decides reach it as seccomp user notifications, not ptrace stops
(issue: performance): the guest must not see the difference. The ptrace-stop way
(UMVU_NOTIF=0) stays tested beside it."""
import os
import shutil
import subprocess

import pytest

from conftest import REPO, run
from test_virtual_fds import CONTENT_PROG, both_ways, check_content

SIGCALLS = REPO / "tests" / "progs" / "sigcalls.c"
STOPS = {"UMVU_NOTIF": "0"}  # the same calls as ptrace stops
WAYS = {"notifications": None, "stops": STOPS}


@pytest.fixture(scope="module")
def sigcalls(tmp_path_factory):
    prog = tmp_path_factory.mktemp("prog") / "sigcalls"
    subprocess.run(["gcc", "-O1", "-o", str(prog), str(SIGCALLS)], check=True)
    return prog


def mounted(mnt, cmd):
    return "vu_insmod vufuse && vumount -t vufusememfs none %s && %s" % (mnt, cmd)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("where", ["outside", "inside"])
def test_signals_never_make_path_calls_fail_with_eintr(tmp_path, sigcalls, way, where):
    """stat, open, readlink and access under a SIGALRM every 200 us whose handler has no
    SA_RESTART: natively none fails; under umvu a call may be waiting for the tracer
    when the signal comes (in a notification, or at a stop), and still none fails."""
    native_dir = tmp_path / "n"
    native_dir.mkdir()
    native = run("native", [str(sigcalls), str(native_dir)])
    assert native.returncode == 0, native.stderr
    assert native.stdout == b"calls 12000 eintr 0 other errors 0 signals some\n"
    mnt = tmp_path / "m"
    mnt.mkdir()
    work = tmp_path / "g"
    work.mkdir()
    target = mnt if where == "inside" else work
    guest = run("umvu", ["sh", "-c", mounted(mnt, "%s %s" % (sigcalls, target))],
                env=WAYS[way])
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout == native.stdout, guest.stderr


def test_signals_never_make_path_calls_fail_as_unprivileged_user(as_user, sigcalls):
    """The same as nobody: the listener is taken from a guest of the same user."""
    prog = as_user.work / "sigcalls"
    shutil.copy(sigcalls, prog)
    os.chmod(prog, 0o755)
    guest = as_user(["sh", "-c", "mkdir -p sig-m sig-g && " +
                     mounted("sig-m", "%s sig-g && %s sig-m" % (prog, prog))])
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout == b"calls 12000 eintr 0 other errors 0 signals some\n" * 2


def listeners_held(env):
    """What umvu holds while its guest, a module loaded, waits: the fds' link targets."""
    script = mounted("/tmp", "echo $PPID && read line")
    full_env = dict(os.environ, **(env or {}))
    guest = subprocess.Popen([str(REPO / "bin" / "umvu"), "sh", "-c", script],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=full_env)
    try:
        pid = int(guest.stdout.readline())
        fds = os.listdir("/proc/%d/fd" % pid)
        links = []
        for fd in fds:
            try:
                links.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
            except FileNotFoundError:
                pass
    finally:
        guest.communicate(b"\n", timeout=60)
    assert guest.returncode == 0
    return links


def test_umvu_listens_for_notifications_and_the_guest_holds_no_listener():
    """With a module loaded umvu holds a seccomp listener (its copy: the guest's own fd
    was closed at once, so the guest's fd numbers are what they are natively); with
    UMVU_NOTIF=0 it holds none."""
    links = listeners_held(None)
    assert "anon_inode:seccomp notify" in links, links
    links = listeners_held(STOPS)
    assert "anon_inode:seccomp notify" not in links, links
    out = run("umvu", ["sh", "-c", mounted("/tmp", "ls -l /proc/self/fd | grep -c seccomp")])
    assert out.stdout == b"0\n"


@pytest.mark.parametrize("fs", ["vufusememfs", "vufuseext2"])
def test_read_only_and_directory_fds_by_ptrace_stops(tmp_path, fs):
    """The content fds, placeholders and eventfds given by rewriting the open at a ptrace
    stop (UMVU_NOTIF=0), not put into the fd table by the tracer: as the kernel too."""
    check_content(fs, *both_ways(tmp_path, "umvu", fs, ["python3", CONTENT_PROG],
                                 env=STOPS))

@pytest.mark.parametrize("change", ["rmdir d", "mv d gone", "rm -r d"])
def test_a_directory_turned_into_a_symlink_into_a_mount_is_followed(tmp_path, change):
    """The C loop remembers for a while which steps of a walk are no symlink; a guest
    that replaces such a directory by a symlink into a mount is then walked into the
    mount at once (the same script natively, on a plain directory, prints the same)."""
    script = ("mkdir -p M d && echo inside > M/f && stat -c %%F d && cat d/f 2>/dev/null;"
              " %s && ln -s M d && cat d/f && stat -L -c %%F d/f" % change)
    native_dir = tmp_path / "n"
    native_dir.mkdir()
    native = run("native", ["sh", "-c", script], cwd=native_dir)
    assert native.returncode == 0, native.stderr
    assert native.stdout == b"directory\ninside\nregular file\n"
    guest_dir = tmp_path / "g"
    (guest_dir / "M").mkdir(parents=True)
    guest = run("umvu", ["sh", "-c", mounted(guest_dir / "M", script)], cwd=guest_dir)
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout == native.stdout
