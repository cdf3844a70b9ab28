"""No guest reaches into umvu (issue: views that hold, the tracer itself): umvu is not
dumpable, so a guest of its own user can neither write its memory (/proc/PID/mem,
process_vm_writev), nor trace it, nor open its fds; files of umvu's reach guests by
seccomp ADDFD or over a unix socket (umvu.core.handoff), which this checks as well
(-S and UMVU_NOTIF=0 take the socket: no notification)."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import run

ATTACK = r'''
import ctypes, errno, os, sys
umvu = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
def attempt(fn):
    try:
        r = fn()
        return "ok" if r is None or r >= 0 else errno.errorcode[ctypes.get_errno()]
    except OSError as e:
        return errno.errorcode[e.errno]
def mem():
    with open("/proc/%d/mem" % umvu, "r+b") as f:
        f.seek(0x400000)
        f.write(b"\0")
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
def vm_write():
    buf = ctypes.create_string_buffer(8)
    local, remote = iovec(ctypes.addressof(buf), 8), iovec(0x400000, 8)
    return libc.process_vm_writev(umvu, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
def seize():
    return libc.ptrace(0x4206, umvu, 0, 0)  # PTRACE_SEIZE
def fds():
    os.listdir("/proc/%d/fd" % umvu)
def fd0():
    os.open("/proc/%d/fd/0" % umvu, os.O_RDONLY)
for name, fn in [("mem", mem), ("process_vm_writev", vm_write), ("ptrace", seize),
                 ("list-fds", fds), ("open-fd", fd0)]:
    print(name, attempt(fn))
'''

# a memfs file read, mapped and written through a mapping: the content memfd and the
# shared mapping's memfd are umvu's, given to the guest
USE = r'''
import mmap, os, sys
p = sys.argv[1] + "/f"
open(p, "wb").write(b"content of f\n")
print(open(p, "rb").read().decode().strip())
with open(p, "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    m[0:7] = b"CONTENT"
    m.flush()
    m.close()
print(open(p, "rb").read().decode().strip())
'''

REFUSED = ["mem EACCES", "process_vm_writev EPERM", "ptrace EPERM", "list-fds EACCES",
           "open-fd EACCES"]


def attack_script(top):
    return (f"vu_insmod vufuse && vumount -t vufusememfs none {top}/m || exit 9\n"
            f"python3 {top}/attack.py $PPID && python3 {top}/use.py {top}/m && "
            f"python3 {top}/attack.py $PPID")


def check(r):
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[:5] == REFUSED
    assert lines[5:7] == ["content of f", "CONTENT of f"]
    assert lines[7:] == REFUSED  # and the session went on


@pytest.mark.parametrize("env", [{}, {"UMVU_NOTIF": "0"}], ids=["notif", "ptrace"])
def test_a_guest_cannot_reach_into_umvu(as_user, guest_mode, env):
    top = as_user.work / ("tracer-%s-%s" % (guest_mode, "-".join(env) or "notif"))
    top.mkdir(exist_ok=True)
    (top / "m").mkdir(exist_ok=True)
    (top / "attack.py").write_text(ATTACK)
    (top / "use.py").write_text(USE)
    if os.getuid() == 0:
        subprocess.run(["chown", "-R", "nobody", str(top)], check=True)
    # umvu (as the unprivileged user) with env in its environment
    prefix, kvs = list(as_user.prefix), ["%s=%s" % kv for kv in env.items()]
    cmd = (["env"] + kvs + prefix) if len(prefix) == 1 else prefix[:-1] + kvs + prefix[-1:]
    cmd += (["-S"] if guest_mode == "umvu-S" else []) + ["bash", "-c", attack_script(top)]
    check(subprocess.run(cmd, capture_output=True, cwd=str(as_user.work), timeout=120))


@pytest.mark.skipif(os.getuid() != 0, reason="a root session")
def test_a_dropped_guest_cannot_reach_into_a_root_umvu(guest_mode):
    top = Path(tempfile.mkdtemp(prefix="umvu-tracer-"))  # (every user may search it)
    os.chmod(top, 0o755)
    (top / "m").mkdir()
    (top / "attack.py").write_text(ATTACK)
    drop = "setpriv --reuid=nobody --regid=nogroup --clear-groups"
    try:
        r = run(guest_mode, ["bash", "-c", f"vu_insmod vufuse && vumount -t vufusememfs "
                             f"none {top}/m && {drop} python3 {top}/attack.py $PPID"])
    finally:
        shutil.rmtree(top, ignore_errors=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == REFUSED
