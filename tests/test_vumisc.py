"""vumisc: the view's own clock (vumisctime) and host name (vumiscuname)."""
import time

import pytest

from conftest import run

Y2000 = 946684800  # 2000-01-01T00:00:00Z


def test_offset_moves_date_and_the_vdso_clock(tmp_path):
    (tmp_path / "tm").mkdir()
    script = f"""
        vu_insmod vumisc && vumount -t vumisctime none tm && ls tm &&
        cat tm/frequency && date -u +%Y &&
        python3 -c 'import time; print(time.gmtime().tm_year)' &&
        echo $(( {Y2000} + 86400 * 40 - $(date +%s) )) > tm/offset &&
        date -u +%Y-%m && python3 -c 'import time; print(time.gmtime().tm_year)' &&
        python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).year)'
    """
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path)
    now_year = time.gmtime().tm_year
    assert r.stdout.decode().split() == [
        "base", "frequency", "offset", "1.000000", str(now_year), str(now_year),
        "2000-02", "2000", "2000"], r.stderr.decode()


def test_date_s_moves_only_the_view_and_needs_virtual_root(as_user):
    (as_user.work / "tm").mkdir(exist_ok=True)
    script = """
        vu_insmod vumisc unrealuidgid && vumount -t vumisctime none tm &&
        { date -s '2001-09-09 01:46:40' > /dev/null 2>&1 || echo refused; } &&
        vusu -c "date -u -s '2001-09-09 01:46:40' > /dev/null" && date -u +%Y &&
        python3 -c 'import time; print(time.gmtime().tm_year)'
    """
    r = as_user(["bash", "-c", script])
    assert r.stdout.decode().split() == ["refused", "2001", "2001"], r.stderr.decode()
    # the host's clock did not move
    assert time.gmtime().tm_year >= 2026


def test_frequency_scales_sleeps_and_keeps_time_continuous(tmp_path):
    (tmp_path / "tm").mkdir()
    prog = ("import time; a, m = time.time(), time.monotonic(); time.sleep(1); "
            "print(round(time.time() - a, 1), round(time.monotonic() - m, 1))")
    script = f"""
        vu_insmod vumisc && vumount -t vumisctime none tm &&
        before=$(date +%s) && echo 2 > tm/frequency && after=$(date +%s) &&
        echo jump=$(( after - before )) &&
        python3 -c '{prog}' &&
        h0=$(cut -d' ' -f1 /proc/uptime) && sleep 1 && h1=$(cut -d' ' -f1 /proc/uptime) &&
        echo host=$(python3 -c "print(round($h1 - $h0, 1))")
    """
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path)
    out = r.stdout.decode().split("\n")
    assert out[0] in ("jump=0", "jump=1"), r.stderr.decode()
    virtual = [float(x) for x in out[1].split()]
    assert all(0.9 <= v <= 1.6 for v in virtual), out  # a virtual second passed
    host = float(out[2].split("=")[1])
    assert host < 0.95, out  # in about half a host second (loose: no tight timing)


def test_uname_of_the_view(as_user):
    (as_user.work / "un").mkdir(exist_ok=True)
    script = """
        vu_insmod vumisc unrealuidgid && vumount -t vumiscuname -o nodename=inside none un &&
        uname -n && hostname && { hostname other 2>/dev/null || echo refused; } &&
        vusu -c 'hostname viewhost' && uname -n && cat un/nodename &&
        echo written > un/nodename && uname -n
    """
    r = as_user(["bash", "-c", script])
    assert r.stdout.decode().split() == ["inside", "inside", "refused", "viewhost",
                                         "viewhost", "written"], r.stderr.decode()
    import os
    assert os.uname().nodename != "viewhost"


def test_alarm_and_itimer_follow_the_frequency(tmp_path):
    (tmp_path / "tm").mkdir()
    prog = r'''
import signal, time
class Rang(Exception):
    pass
def ring(*a):
    raise Rang()
signal.signal(signal.SIGALRM, ring)
for arm in (lambda: signal.alarm(2), lambda: signal.setitimer(signal.ITIMER_REAL, 2.0)):
    a, h = time.monotonic(), time.clock_gettime(time.CLOCK_BOOTTIME)
    arm()
    try:
        time.sleep(30)
    except Rang:
        pass
    print(round(time.monotonic() - a), "virtual seconds")
signal.setitimer(signal.ITIMER_REAL, 8.0)
print("left", round(signal.getitimer(signal.ITIMER_REAL)[0]))
'''
    (tmp_path / "t.py").write_text(prog)
    r = run("umvu", ["bash", "-c", "vu_insmod vumisc && vumount -t vumisctime none tm && "
                     "echo 4 > tm/frequency && h0=$(cut -d' ' -f1 /proc/uptime) && "
                     "python3 t.py && h1=$(cut -d' ' -f1 /proc/uptime) && "
                     "python3 -c \"print('host', $h1 - $h0 < 3.5)\""], cwd=tmp_path)
    assert r.stdout.decode().splitlines() == ["2 virtual seconds", "2 virtual seconds",
                                              "left 8", "host True"], r.stderr.decode()


SELECT_LEFT = r'''
import ctypes, signal
libc = ctypes.CDLL(None, use_errno=True)
class timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]
class timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
signal.signal(signal.SIGALRM, lambda *a: None)
tv = timeval(8, 0)
signal.alarm(2)
print(libc.select(0, None, None, None, ctypes.byref(tv)), ctypes.get_errno(),
      round(tv.sec + tv.usec / 1e6))
ts = timespec(8, 0)
signal.alarm(2)
print(libc.syscall(271, None, 0, ctypes.byref(ts), None, 0), ctypes.get_errno(),
      round(ts.sec + ts.nsec / 1e9))
'''


@pytest.mark.parametrize("frequency", ["1", "4"])
def test_select_and_ppoll_give_the_time_left(frequency, tmp_path):
    """Linux writes what is left of the timeout back: interrupted after 2 of 8 virtual
    seconds, select and ppoll (271) leave 6, at any frequency, as natively."""
    (tmp_path / "tm").mkdir()
    (tmp_path / "t.py").write_text(SELECT_LEFT)
    native = run("native", ["python3", "t.py"], cwd=tmp_path)
    assert native.stdout == b"-1 4 6\n-1 4 6\n", native.stderr
    r = run("umvu", ["bash", "-c", "vu_insmod vumisc && vumount -t vumisctime none tm && "
                     "echo %s > tm/frequency && python3 t.py" % frequency], cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, native.stdout), r.stderr.decode()


SELECT_RESTARTED = r'''
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
class timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]
if os.fork() == 0:
    time.sleep(0.5)
    os._exit(0)
tv = timeval(2, 0)
start = time.monotonic()
print(libc.select(0, None, None, None, ctypes.byref(tv)), round(time.monotonic() - start),
      tv.sec, tv.usec)
'''


def test_a_restarted_select_waits_its_whole_timeout(tmp_path):
    """A child's SIGCHLD (no handler) makes the kernel restart the parent's select with
    the registers as they are: under vumisc's frequency they held the scaled copy, which
    was scaled again; the hypervisor puts the guest's own call back, so the select waits
    its 2 virtual seconds, as natively."""
    (tmp_path / "tm").mkdir()
    (tmp_path / "t.py").write_text(SELECT_RESTARTED)
    native = run("native", ["python3", "t.py"], cwd=tmp_path)
    assert native.stdout == b"0 2 0 0\n", native.stderr
    r = run("umvu", ["bash", "-c", "vu_insmod vumisc && vumount -t vumisctime none tm && "
                     "echo 4 > tm/frequency && python3 t.py"], cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, native.stdout), r.stderr.decode()
