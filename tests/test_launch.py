"""The guest starts before the hypervisor: the C loop follows it alone (the process tree
as the kernel shares fs, fd tables and memory) until an event needs the hypervisor, which
then rebuilds its table from that tree. Sharing made before the first module must hold
after it."""
import os

from conftest import run

PROG = r"""
import os, subprocess, sys, threading
T = sys.argv[1]
os.chdir(T)
go, done = threading.Event(), threading.Event()

def worker():  # a thread made before any module: it shares the cwd (CLONE_FS)
    go.wait()
    os.chdir("mnt")
    done.set()

th = threading.Thread(target=worker)
th.start()
child = subprocess.Popen(["sh", "-c", "cd sub && read x && cat ../mnt/x && pwd"],
                         stdin=subprocess.PIPE)  # a process forked before any module
subprocess.run(["vu_insmod", "vufuse"], check=True)
subprocess.run(["vumount", "-t", "vufusememfs", "none", T + "/mnt"], check=True)
with open(T + "/mnt/x", "w") as f:
    f.write("virt\n")
go.set()
done.wait()
print(open("x").read().strip(), os.getcwd() == T + "/mnt", flush=True)
child.communicate(b"go\n")
th.join()
print("child", child.returncode)
"""


def test_sharing_made_before_the_first_module(tmp_path, guest_mode):
    (tmp_path / "mnt").mkdir()
    (tmp_path / "sub").mkdir()
    r = run(guest_mode, ["python3", "-c", PROG, str(tmp_path)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == [
        "virt True", "virt", str(tmp_path / "sub"), "child 0"], r.stderr
    assert os.listdir(tmp_path / "mnt") == []


def test_exit_status_without_the_hypervisor(guest_mode):
    """No module: the guest tree ends inside the C loop; statuses as natively."""
    for script, code in (("exit 7", 7), ("kill -TERM $$", 128 + 15),
                         ("(sleep 0.1; exit 3) & exit 5", 5)):
        assert run(guest_mode, ["sh", "-c", script]).returncode == code
        native = run("native", ["sh", "-c", script]).returncode
        assert (128 - native if native < 0 else native) == code  # as a shell reports


def test_no_filter_until_a_module_is_needed():
    """Followed in C the guest has no seccomp filter (its calls cost what they cost
    natively); the first vu_* command knocks and from then every process has one."""
    script = ("grep Seccomp: /proc/self/status; vuname; grep Seccomp: /proc/self/status; "
              "vu_insmod vufuse; grep Seccomp: /proc/self/status")
    r = run("umvu", ["sh", "-c", script])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().split("\n")
    native = run("native", ["grep", "Seccomp:", "/proc/self/status"]).stdout.decode()
    assert lines[0] + "\n" == native == "Seccomp:\t0\n"
    assert lines[1] == ""  # vuname: this view has no name
    assert lines[2] == lines[3] == "Seccomp:\t2"  # SECCOMP_MODE_FILTER


def test_one_filter_when_the_first_command_loads_a_module():
    """vu_insmod knocks saying a module comes: every process gets the modules' filter
    at once, not the core's and then the modules' stacked on it (each filter costs every
    syscall of the process)."""
    script = ("vu_insmod vufuse && grep Seccomp_filters: /proc/self/status && "
              "sh -c 'grep Seccomp_filters: /proc/self/status' && vuname && "
              "grep Seccomp_filters: /proc/self/status")
    r = run("umvu", ["sh", "-c", script])
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split("\n") == ["Seccomp_filters:\t1"] * 2 + [
        "", "Seccomp_filters:\t1", ""]


SIGURG_PROG = r"""
import os, signal, subprocess, sys, threading
got = []
signal.signal(signal.SIGURG, lambda s, f: got.append(s))
os.kill(os.getpid(), signal.SIGURG)
signal.pthread_kill(threading.get_ident(), signal.SIGURG)
if len(sys.argv) > 1:
    subprocess.run(sys.argv[1], shell=True, check=True)
os.kill(os.getpid(), signal.SIGURG)
print(len(got), flush=True)
subprocess.run(["sh", "-c", "trap 'echo urg' URG; kill -URG $$"], check=True)
"""


def test_the_guests_own_sigurg_is_delivered(guest_mode):
    """The knock is a SIGURG with a cookie: the guest's own SIGURGs reach it as natively,
    before and after the hypervisor starts."""
    native = run("native", ["python3", "-c", SIGURG_PROG])
    for extra in ([], ["vu_insmod vufuse"]):
        r = run(guest_mode, ["python3", "-c", SIGURG_PROG] + extra)
        assert (r.returncode, r.stdout) == (native.returncode, native.stdout), r.stderr
    assert native.stdout == b"3\nurg\n"


def test_python_starts_only_when_needed(guest_mode):
    """umvu CMD follows the guest in C; the interpreter is loaded into umvu (its parent
    here) only for the first vu_* command (-S goes through Python at once)."""
    maps = "grep -c -e libpython -e 'python3[.0-9]*$' /proc/$PPID/maps"
    r = run(guest_mode, ["sh", "-c", maps + "; vu_insmod vufuse; " + maps])
    counts = r.stdout.decode().split()
    if guest_mode == "umvu":
        assert counts[0] == "0", r.stderr
    assert int(counts[-1]) > 0, r.stderr


def test_umvu_sleeps_when_the_guest_does(tmp_path):
    """While stops come close together the tracer polls for the next one; once the guest
    sleeps it sleeps too: umvu uses next to no CPU over a 3 s sleep that follows a burst
    of stops (polling through it would take ~3 s)."""
    (tmp_path / "m").mkdir()
    cpu = "cut -d' ' -f14,15 /proc/$PPID/stat"  # umvu's utime and stime, all threads
    script = ("vu_insmod vufuse && vumount -t vufusememfs none %s/m && "
              "ls -lR /usr/share/doc > /dev/null && %s && sleep 3 && %s"
              % (tmp_path, cpu, cpu))
    r = run("umvu", ["sh", "-c", script], umvu_opts=("--spin", "50"))
    assert r.returncode == 0, r.stderr
    before, after = [sum(map(int, line.split())) for line in r.stdout.split(b"\n")[:2]]
    ticks = os.sysconf("SC_CLK_TCK")
    assert after - before < ticks // 2, (before, after)
