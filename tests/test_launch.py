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
