"""vubinfmt: the session's own binfmt_misc, with the kernel's register/status/rule files
and its argv rules; an arm64 busybox run by qemu-user-static directly by path, and as a
private root's shell; the host's binfmt_misc untouched."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import textwrap

import pytest

from conftest import run

BINFMT = "/proc/sys/fs/binfmt_misc"
# the rule Debian's qemu-user-static registers for aarch64 ELF (its magic and mask),
# with the static qemu as the interpreter
QEMU_RULE = (r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00"
             r"\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff"
             r"\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F")
QEMU = shutil.which("qemu-aarch64-static")
DEBS = glob.glob("/var/cache/umvu/busybox-static_*_arm64.deb")


def host_binfmt() -> list[str]:
    return sorted(os.listdir(BINFMT)) if os.path.isdir(BINFMT) else []


@pytest.fixture(scope="module")
def armroot(tmp_path_factory):
    """An arm64 tree: Debian's busybox-static:arm64 unpacked (make setup fetches it)."""
    assert QEMU and DEBS, "make setup installs qemu-user-static and fetches busybox:arm64"
    root = tmp_path_factory.mktemp("armroot")
    subprocess.run(["dpkg-deb", "-x", DEBS[0], str(root)], check=True)
    for d in ("proc", "dev", "tmp"):
        (root / d).mkdir(exist_ok=True)
    return root


def test_arm64_busybox_by_path_and_as_a_private_root(armroot, tmp_path):
    before = host_binfmt()
    busybox = armroot / "bin" / "busybox"
    native = subprocess.run([QEMU, str(busybox), "sh", "-c", "echo $((6*7)); uname -m; "
                             "basename /a/b/c"], capture_output=True, check=True).stdout
    script = textwrap.dedent("""\
        set -e
        vu_insmod vubinfmt vufs
        vumount -t vubinfmt none %(b)s
        echo '%(rule)s' > %(b)s/register
        %(bb)s sh -c 'echo $((6*7)); uname -m; basename /a/b/c'
        echo ---
        vumount -t vufs /proc /proc; vumount -t vufs /dev /dev
        vumount -t vufs -o bind %(root)s /
        /bin/busybox sh -c 'uname -m; ls /'
        """) % {"b": BINFMT, "rule": QEMU_RULE, "bb": busybox, "root": armroot}
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    by_path, _, rooted = r.stdout.partition(b"---\n")
    assert by_path == native == b"42\naarch64\nc\n"
    assert rooted.split() == [b"aarch64"] + sorted(os.fsencode(n) for n in os.listdir(armroot))
    assert host_binfmt() == before  # (nothing registered on the host)


INTERP = """#!/usr/bin/python3
# a binfmt_misc interpreter: what it was given, and the AT_EXECFD it got (flag O)
import ctypes, os, sys
for a in sys.argv[1:]:
    print("arg:" + a)
fd = ctypes.CDLL(None).getauxval(2)
print("execfd", "none" if fd == 0 else os.readlink("/proc/self/fd/%d" % fd))
"""


def test_extension_rule_flags_status_and_removal(tmp_path):
    before = host_binfmt()
    interp = tmp_path / "interp.py"
    interp.write_text(INTERP)
    interp.chmod(0o755)
    prog = tmp_path / "greet.hello"
    prog.write_bytes(b"not a program\0 of any kind\0")  # (binary: bash runs no script)
    prog.chmod(0o755)
    b = BINFMT
    script = textwrap.dedent("""\
        vu_insmod vubinfmt && vumount -t vubinfmt none {b} || exit 9
        echo ':hello:E::hello::{i}:' > {b}/register
        cat {b}/hello; cat {b}/status
        ./greet.hello one two
        echo ':hello:E::hello::{i}:' > {b}/register 2>/dev/null || echo "again: refused"
        echo ':bad:X::x::{i}:' > {b}/register 2>/dev/null || echo "bad type: refused"
        echo -1 > {b}/hello
        echo ':hello:E::hello::{i}:P' > {b}/register
        grep "^flags" {b}/hello
        ./greet.hello one two
        echo -1 > {b}/hello
        echo ':hello:E::hello::{i}:C' > {b}/register
        grep "^flags" {b}/hello
        ./greet.hello one
        echo 0 > {b}/hello; cat {b}/hello | head -1
        ./greet.hello 2>&1 | grep -c "Exec format error"
        echo 1 > {b}/hello; echo 0 > {b}/status; cat {b}/status
        ./greet.hello 2>&1 | grep -c "Exec format error"
        echo 1 > {b}/status
        echo -1 > {b}/status; ls {b}
        ./greet.hello 2>&1 | grep -c "Exec format error"
        """).format(b=b, i=interp)
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    out = r.stdout.decode().split("\n")
    p = str(prog.name)
    assert out[:6] == ["enabled", "interpreter %s" % interp, "flags: ", "extension .hello",
                       "enabled", "arg:./%s" % p], out
    # no P: argv[0] replaced by the file name: interp ./greet.hello one two
    assert out[6:9] == ["arg:one", "arg:two", "execfd none"], out
    assert out[9:11] == ["again: refused", "bad type: refused"], out
    # P: argv[0] kept after the file name
    assert out[11:16] == ["flags: P", "arg:./%s" % p, "arg:./%s" % p, "arg:one", "arg:two"]
    assert out[16] == "execfd none"
    # C (and so O): the binary open, as AT_EXECFD
    assert out[17:21] == ["flags: OC", "arg:./%s" % p, "arg:one", "execfd %s" % prog], out
    assert out[21:26] == ["disabled", "1", "disabled", "1", "register"], out
    assert out[26:28] == ["status", "1"], out
    assert host_binfmt() == before
