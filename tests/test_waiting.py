"""Calls that wait (umvu.core.waiting): a module call that waits for another guest, a
timer or trio keeps its guest waiting while umvu serves every other guest; signals and
SIGKILL reach a waiting call as they reach a blocking read natively."""
import subprocess

import pytest

from conftest import REPO, compile_prog, run

MODULES = REPO / "tests" / "modules"
PARKED = 34  # what /proc/PID/syscall says of a waiting guest: pause(2)

# waits (builtins only: no process is made) until process $1 waits in umvu
WAIT_PARKED = """
parked() {
    local n=0 nr rest
    until read -r nr rest < /proc/$1/syscall 2>/dev/null && [ "$nr" = %d ]; do
        n=$((n + 1)); [ $n -lt 2000000 ] || { echo "never waited: $1" >&2; return 1; }
    done
}
""" % PARKED


def waitfs(guest_mode, mnt, script, *, opts="", runner=None, **kw):
    full = ("vu_insmod %s/waitfs.py && vumount -t waitfs %s none %s || exit 9\n"
            % (MODULES, opts, mnt)) + WAIT_PARKED + script
    if runner is not None:
        return runner(["bash", "-c", full], **kw)
    return run(guest_mode, ["bash", "-c", full], **kw)


def test_read_waits_for_another_guests_write(guest_mode, tmp_path):
    mnt = tmp_path / "m"
    mnt.mkdir()
    r = waitfs(guest_mode, mnt, f"""
        head -c 6 {mnt}/in > {tmp_path}/got & reader=$!
        parked $reader || exit 1
        for i in $(seq 20); do /bin/echo -n "$i "; done; echo   # 20 guests meanwhile
        ls {mnt} | tr '\\n' ' '; echo
        kill -0 $reader && echo still waiting
        echo hello > {mnt}/out
        wait $reader; echo reader=$?
        cat {tmp_path}/got
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (b" ".join(b"%d" % i for i in range(1, 21)) + b" \n"
                        b"in nap out \nstill waiting\nreader=0\nhello\n")


def test_sleeping_reads_side_by_side(guest_mode, tmp_path):
    """Each read of nap sleeps 0.3 s in the module: 8 at once all wait together (the
    session goes on meanwhile: the last command runs while they sleep)."""
    mnt = tmp_path / "m"
    mnt.mkdir()
    r = waitfs(guest_mode, mnt, f"""
        for i in 1 2 3 4 5 6 7 8; do cat {mnt}/nap > {tmp_path}/o$i & done
        wait
        cat {tmp_path}/o*
    """, opts="-o nap=0.3")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"nap\n" * 8


@pytest.fixture(scope="module")
def sigread(tmp_path_factory):
    return compile_prog(tmp_path_factory, "sigread")


@pytest.mark.parametrize("how", ["restart", "norestart"])
def test_signal_interrupts_a_waiting_read_as_a_pipe_read(guest_mode, tmp_path, sigread, how):
    fifo = tmp_path / "fifo"
    subprocess.run(["mkfifo", str(fifo)], check=True)
    native = run("native", [str(sigread), str(fifo), str(fifo), how], timeout=60)
    mnt = tmp_path / "m"
    mnt.mkdir()
    guest = waitfs(guest_mode, mnt, f"{sigread} {mnt}/in {mnt}/out {how}", timeout=60)
    expected = {"restart": b"read 5: late\nchild 0\n",
                "norestart": b"read: Interrupted system call\nagain 5: late\nchild 0\n"}
    assert native.stdout == expected[how]
    assert (guest.returncode, guest.stdout) == (native.returncode, native.stdout)


def test_killed_waiting_guests_leave_nothing(tmp_path):
    """1000 guests killed (SIGKILL) while their read waits: umvu holds no more fds and
    no more memory than after the first 100, and the session goes on."""
    mnt = tmp_path / "m"
    mnt.mkdir()
    r = waitfs("umvu", mnt, f"""
        umvu=$PPID
        state() {{ echo "$(ls /proc/$umvu/fd | wc -l) $(grep VmRSS /proc/$umvu/status | tr -s ' ' | cut -d' ' -f2)"; }}
        kill_waiting() {{
            for i in $(seq $1); do
                head -c 1 {mnt}/in > /dev/null & r=$!
                parked $r || exit 1
                kill -9 $r; wait $r 2>/dev/null
            done
        }}
        kill_waiting 100; state
        kill_waiting 900; state
        head -c 3 {mnt}/in & reader=$!; parked $reader; echo ok > {mnt}/out; wait $reader
        echo alive
    """, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[2:] == ["ok", "alive"]
    (fds1, rss1), (fds2, rss2) = (map(int, line.split()) for line in lines[:2])
    assert fds2 == fds1
    assert rss2 - rss1 < 4096, (rss1, rss2)  # kB: no growth with the kills


def test_trio_file_system_waits_side_by_side(guest_mode, tmp_path):
    """A pyfuse3 file system whose read awaits trio.sleep(0.3) and whose lookup takes a
    trio.Lock: 8 parallel readers are all served, all 8 reads under way at once (each
    read waits for the 8 first: served one by one, they would time out)."""
    mnt = tmp_path / "t"
    mnt.mkdir()
    r = run(guest_mode, ["bash", "-c", f"""
        vu_insmod vufuse && vumount -t vufuse -o fs={MODULES}/triofs.py 8 {mnt} || exit 9
        for i in 0 1 2 3 4 5 6 7; do cat {mnt}/f$i > {tmp_path}/out$i & done
        wait
        cat {tmp_path}/out*; cat {mnt}/stats
    """], timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"".join(b"file %d\n" % i for i in range(8)) + b"most 8\n"


def test_waiting_read_as_an_unprivileged_user(as_user, tmp_path):
    work = as_user.work
    mnt = work / "m"
    mnt.mkdir(exist_ok=True)
    subprocess.run(["chown", "nobody", str(mnt)], check=True)
    subprocess.run(["cp", str(MODULES / "waitfs.py"), str(work / "waitfs.py")], check=True)
    script = ("vu_insmod %s/waitfs.py && vumount -t waitfs none %s || exit 9\n" % (work, mnt)
              + WAIT_PARKED + f"""
        head -c 3 {mnt}/in & reader=$!
        parked $reader || exit 1
        id -u; echo hi > {mnt}/out; wait $reader; echo " reader=$?"
    """)
    r = as_user(["bash", "-c", script], timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"65534\nhi\n reader=0\n"
