"""The calls that change the file system, which umvu makes itself on the path it checked
once a module is loaded (csrc/hostwrites.c, umvu/core/hostcalls.py), answer as the kernel does: every open
flag and error, trailing slashes and dots, symlinks followed or not, the umask, times,
xattrs, renameat2 flags (tests/progs/writes_probe.py, about 100 calls), natively and
under umvu with a memfs mounted elsewhere; also as an unprivileged user, and as a guest
that dropped its privileges in a root session (the files it makes are its own)."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, run

PROBE = REPO / "tests/progs/writes_probe.py"


def probe(runner, work, mnt):
    """The probe in the empty directory work, with a memfs mounted on mnt."""
    _fresh(work)
    _fresh(mnt)
    return runner(["bash", "-c", f"cd {work} && vu_insmod vufuse && "
                   f"vumount -t vufusememfs none {mnt} && python3 {PROBE}"])


@pytest.mark.parametrize("mode,env", [("umvu", None), ("umvu", {"UMVU_CWRITES": "0"}),
                                      ("umvu-S", None)], ids=["c", "python", "S"])
def test_host_writes_answer_as_the_kernel(tmp_path, mode, env):
    """Made by the C loop (csrc/hostwrites.c) where it can, by Python (UMVU_CWRITES=0,
    and -S) everywhere else."""
    native = run("native", ["python3", str(PROBE)], cwd=_fresh(tmp_path / "n"))
    assert native.returncode == 0, native.stderr.decode()
    guest = probe(lambda argv: run(mode, argv, timeout=120, env=env), tmp_path / "u",
                  tmp_path / "m")
    assert guest.returncode == 0, guest.stderr.decode()
    assert len(native.stdout.splitlines()) > 90
    assert guest.stdout.decode() == native.stdout.decode()


def _fresh(d):
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def test_host_writes_as_an_unprivileged_user(as_user):
    top = as_user.work / "hostwrites"
    _fresh(top)
    if os.getuid() == 0:
        subprocess.run(["chown", "nobody", str(top)], check=True)
    nat = subprocess.run(["runuser", "-u", "nobody", "--", "bash", "-c",
                          f"mkdir {top}/n && cd {top}/n && python3 {PROBE}"]
                         if os.getuid() == 0 else
                         ["bash", "-c", f"mkdir {top}/n && cd {top}/n && python3 {PROBE}"],
                         capture_output=True)
    assert nat.returncode == 0, nat.stderr.decode()
    guest = as_user(["bash", "-c", f"mkdir {top}/u {top}/m && cd {top}/u && vu_insmod vufuse "
                     f"&& vumount -t vufusememfs none {top}/m && python3 {PROBE}"],
                    timeout=120)
    assert guest.returncode == 0, guest.stderr.decode()
    assert guest.stdout.decode() == nat.stdout.decode()


@pytest.mark.skipif(os.getuid() != 0, reason="needs a root session")
def test_a_dropped_guest_makes_its_own_files():
    """In a root session, what umvu makes for a guest that dropped its privileges is
    made with its ids: its files are its own, and root's files stay root's."""
    top = Path(tempfile.mkdtemp(prefix="umvu-dropped-"))  # (pytest's: root's alone)
    try:
        dropped_guest(top)
    finally:
        shutil.rmtree(top)


def dropped_guest(top):
    os.chmod(top, 0o755)
    work = top / "w"
    work.mkdir()
    (work / "rootfile").write_text("root's\n")
    os.chmod(work / "rootfile", 0o644)
    os.chown(work, 65534, 65534)
    mnt = top / "m"
    mnt.mkdir()
    script = f"""vu_insmod vufuse && vumount -t vufusememfs none {mnt} || exit 9
        setpriv --reuid=65534 --regid=65534 --clear-groups bash -c '
          cd {work}; echo mine > mine; mkdir dmine; ln -s x lmine
          echo pwn >> rootfile; echo "append=$?"
          chmod 777 rootfile; echo "chmod=$?"
          rm -f rootfile; echo "rm=$?"' 2>/dev/null"""
    r = run("umvu", ["bash", "-c", script], timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    # nobody owns the directory: it may remove root's file there, not write or chmod it
    assert r.stdout.decode().split() == ["append=1", "chmod=1", "rm=0"]
    for name in ("mine", "dmine", "lmine"):
        st = os.lstat(work / name)
        assert (st.st_uid, st.st_gid) == (65534, 65534), name


FIFO_SCRIPT = """mkfifo p
(cat p > out1) & echo hello > p; wait; cat out1
echo second > p & cat p; wait
(exec 3<p; cat <&3 > out2) & exec 4>p; echo third >&4; exec 4>&-; wait; cat out2
echo fourth > /dev/null; echo "devnull=$?"
"""


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_a_fifo_opened_for_writing_waits_for_its_reader(tmp_path, mode):
    """A fifo opened for writing, which umvu opens for the guest, waits for a reader as
    the kernel's open does (the guest's call waits, umvu serves the reader meanwhile),
    whichever of the two comes first."""
    native = run("native", ["bash", "-c", FIFO_SCRIPT], cwd=_fresh(tmp_path / "n"),
                 timeout=60)
    assert native.returncode == 0
    work, mnt = _fresh(tmp_path / "u"), _fresh(tmp_path / "m")
    guest = run(mode, ["bash", "-c", f"vu_insmod vufuse && vumount -t vufusememfs none {mnt}"
                       f" && cd {work} && " + FIFO_SCRIPT], timeout=60)
    assert guest.returncode == 0, guest.stderr.decode()
    assert guest.stdout == native.stdout == b"hello\nsecond\nthird\ndevnull=0\n"


UMASKS = r"""
import os, threading
os.umask(0o022); open("a", "w").close()
os.umask(0o077); open("b", "w").close()
t = threading.Thread(target=os.umask, args=(0o002,))  # (the process's, shared)
t.start(); t.join()
open("c", "w").close(); os.mkdir("d")
pid = os.fork()
if pid == 0:
    os.umask(0o070); open("e", "w").close(); os._exit(0)
os.waitpid(pid, 0)
open("f", "w").close()  # (the child's umask was its own)
for n in "abcdef":
    print(n, oct(os.stat(n).st_mode))
"""


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_each_create_takes_the_umask_of_its_moment(tmp_path, mode):
    """The C loop's knowledge of a guest's umask follows umask(2) in any thread, and a
    child's own umask stays its own."""
    (tmp_path / "u.py").write_text(UMASKS)
    native = run("native", ["python3", str(tmp_path / "u.py")], cwd=_fresh(tmp_path / "n"))
    assert native.returncode == 0 and len(native.stdout.splitlines()) == 6
    guest = run(mode, ["bash", "-c", f"vu_insmod vufuse && vumount -t vufusememfs none "
                       f"{_fresh(tmp_path / 'm')} && python3 {tmp_path}/u.py"],
                cwd=_fresh(tmp_path / "g"))
    assert guest.returncode == 0, guest.stderr.decode()
    assert guest.stdout == native.stdout


AFFINITY = r"""
import os
print(sorted(os.sched_getaffinity(0)))
for i in range(50):
    with open("f%d" % i, "w") as f:
        f.write("x")
    os.unlink("f%d" % i)
print(sorted(os.sched_getaffinity(0)))
"""


@pytest.mark.parametrize("pin", ["", "taskset -c 0"], ids=["any", "cpu0"])
def test_an_open_handed_over_leaves_the_affinity_as_it_was(tmp_path, pin):
    """The C loop holds the guest's thread to its own CPU while the ADDFD of an open
    runs (csrc/hostwrites.c): the thread's affinity is its own again after."""
    (tmp_path / "a.py").write_text(AFFINITY)
    native = run("native", ["bash", "-c", f"{pin} python3 {tmp_path}/a.py"],
                 cwd=_fresh(tmp_path / "n"))
    assert native.returncode == 0, native.stderr
    guest = run("umvu", ["bash", "-c", f"vu_insmod vufuse && vumount -t vufusememfs none "
                         f"{_fresh(tmp_path / 'm')} && {pin} python3 {tmp_path}/a.py"],
                cwd=_fresh(tmp_path / "g"))
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout == native.stdout
