"""vufuse: pyfuse3 file systems inside umvu without the kernel (issue: vufuse)."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import BASE_ENV, MODES, REPO, differential, run
from test_unreal_differential import CASES


@pytest.mark.parametrize("fstype", ["vufusememfs", "vufusereal"])
@pytest.mark.parametrize("cmd", CASES, ids=range(len(CASES)))
def test_differential_inside_vufuse(cmd, fstype, tmp_path):
    # umvu only: umvu -S runs the same dispatch for every syscall and takes 3x longer;
    # the -S path is covered by the core and /unreal suites
    src = tmp_path / "src"
    src.mkdir()

    def wrap(work, c):
        shutil.rmtree(src)
        src.mkdir()
        return ("vu_insmod vufuse && vumount -t %s %s %s && cd %s && { %s\n}"
                % (fstype, src if fstype == "vufusereal" else "none", work, work, c))
    results = differential(cmd, tmp_path, "umvu", wrap)
    assert results["umvu"] == results["native"], cmd


def test_mount_is_private_to_the_session(tmp_path, guest_mode):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = ("vu_insmod vufuse && vumount -t vufusememfs none %s && echo {} > %s/f && "
              "sleep 0.5 && ls %s && cat %s/f" % (mnt, mnt, mnt, mnt))
    # two sessions at once, each with its own mount on the same path
    procs = [subprocess.Popen(MODES[guest_mode] + ["bash", "-c", script.format(word)],
                              stdout=subprocess.PIPE, env=BASE_ENV)
             for word in ("one", "two")]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert outs == [b"f\none\n", b"f\ntwo\n"]
    assert os.listdir(mnt) == []  # the host sees nothing at the mount point


def test_program_and_python_package_run_from_memfs(tmp_path, guest_mode):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (tmp_path / "hello.c").write_text('#include <stdio.h>\n'
                                      'int main(void){puts("hello from memfs");return 0;}\n')
    script = f"""
        vu_insmod vufuse && vumount -t vufusememfs none {mnt} && cd {mnt} &&
        gcc -o hello {tmp_path}/hello.c && ./hello &&
        mkdir -p pkg/mypkg && printf 'def f():\\n    return 42\\n' > pkg/mypkg/__init__.py &&
        PYTHONPATH={mnt}/pkg python3 -c 'import mypkg; print(mypkg.f(), mypkg.__file__)' &&
        printf '#!/bin/sh\\necho script ok\\n' > s.sh && chmod +x s.sh && ./s.sh
    """
    r = run(guest_mode, ["bash", "-c", script])
    assert r.stdout.decode().splitlines() == [
        "hello from memfs", "42 %s/pkg/mypkg/__init__.py" % mnt, "script ok"], r.stderr


BAD_FS = '''
import errno, os, stat, pyfuse3

class Bad(pyfuse3.Operations):
    def _root(self):
        a = pyfuse3.EntryAttributes()
        a.st_ino, a.st_mode, a.st_nlink = 1, stat.S_IFDIR | 0o755, 2
        return a
    async def getattr(self, inode, ctx=None):
        return self._root()
    async def lookup(self, parent, name, ctx=None):
        if name == b"raise":
            raise RuntimeError("bug in lookup")
        if name == b"garbage":
            return "not attributes"
        if name == b"denied":
            raise pyfuse3.FUSEError(errno.EACCES)
        if name == b"wait":
            import trio
            await trio.sleep(1)
        if name == b"block":
            import time
            time.sleep(3600)
        raise pyfuse3.FUSEError(errno.ENOENT)
'''


def test_bad_submodule_answers_eio_or_its_errno(tmp_path, guest_mode):
    (tmp_path / "badfs.py").write_text(BAD_FS)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run(guest_mode, ["bash", "-c",
                         "vu_insmod vufuse && vumount -t vufuse -o fs=%s/badfs.py,timeout=1 "
                         "none %s && for n in raise garbage denied wait block missing; do "
                         "stat %s/$n > /dev/null 2>&1; python3 -c \"import os,sys\n"
                         "try: os.stat(sys.argv[1])\nexcept OSError as e: print(e.strerror)\" "
                         "%s/$n; done; echo alive" % (tmp_path, mnt, mnt, mnt)],
            umvu_opts=("-o", str(tmp_path / "log")))
    # (wait: a lookup that awaits trio.sleep really waits, then answers what it says;
    # block: one that blocks umvu's thread answers EIO after the timeout)
    assert r.stdout.decode().splitlines() == [
        "Input/output error", "Input/output error", "Permission denied",
        "No such file or directory", "Input/output error", "No such file or directory",
        "alive"]
    log = (tmp_path / "log").read_text()
    assert "RuntimeError: bug in lookup" in log
    assert "lookup blocked for more than 1s, answering EIO" in log


def test_unknown_option_and_submodule(guest_mode, tmp_path):
    r = run(guest_mode, ["bash", "-c", "vu_insmod vufuse; vumount -t vufusememfs -o bogus "
                         "none %s; vumount -t vufusenosuch none %s" % (tmp_path, tmp_path)])
    assert r.stderr.decode().splitlines() == [
        "vumount: vufusememfs on %s: unknown mount option 'bogus': Invalid argument" % tmp_path,
        "vumount: vufusenosuch on %s: no file system module umvu.submodules.vufusenosuch "
        "(No module named 'umvu.submodules.vufusenosuch'): No such device" % tmp_path]


def test_example_script_runs(tmp_path):
    r = subprocess.run(["bash", str(REPO / "examples" / "vufuse.sh")], capture_output=True,
                       env=BASE_ENV, timeout=300)
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    for line in ("C program running from vufusememfs",
                 "python package imported from vufusememfs", "from the host",
                 "on the host, the mount points are empty: 0 entries",
                 "written through vufusereal"):
        assert line in out


TMPDIR_MODULES = ["test_os", "test_shutil", "test_tempfile", "test_glob", "test_fileio",
                  "test_mmap"]
_regr = {}


def _regrtest(script):
    if script not in _regr:
        r = run("native" if script.startswith("native") else "umvu",
                ["bash", "-c", script.split(":", 1)[1]], timeout=3000)
        out = r.stdout.decode(errors="replace")
        _regr[script] = (dict(re.findall(r"\] (test_\w+) (passed|failed|skipped|crashed|"
                                         r"timed out|interrupted)", out)), out[-3000:])
    return _regr[script]


@pytest.mark.parametrize("module", TMPDIR_MODULES)
def test_cpython_tests_with_tmpdir_in_memfs(module, tmp_path_factory):
    mods = " ".join(TMPDIR_MODULES)
    native, ntail = _regrtest("native:exec %s -m test -j2 %s" % (sys.executable, mods))
    assert native.get(module) == "passed", ntail
    mnt = tmp_path_factory.getbasetemp() / "memfs-tmpdir"
    mnt.mkdir(exist_ok=True)
    guest, tail = _regrtest(
        "umvu:vu_insmod vufuse && vumount -t vufusememfs -o size=2000000000 none %s && "
        "TMPDIR=%s exec %s -m test -j2 %s" % (mnt, mnt, sys.executable, mods))
    assert guest.get(module) == "passed", tail


def test_permissions_follow_id_changes_without_exec(tmp_path, guest_mode):
    """The caller's ids are kept per thread until it execs or calls a set*id: a process
    that drops and takes back root is checked as who it is at each call."""
    if os.getuid() != 0:
        pytest.skip("needs root to change ids")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    prog = ("import os\n"
            "p = '%s/secret'\n"
            "print(open(p).read().strip())\n"
            "os.setresuid(65534, 65534, 0)\n"
            "try:\n    open(p)\nexcept OSError as e:\n    print(e.strerror)\n"
            "os.setresuid(0, 0, 0)\n"
            "print(open(p).read().strip())\n" % mnt)
    r = run(guest_mode, ["bash", "-c", "vu_insmod vufuse && vumount -t vufusememfs none %s "
                         "&& echo s > %s/secret && chmod 600 %s/secret && python3 -c \"$P\""
                         % (mnt, mnt, mnt)], env={"P": prog})
    assert r.stdout.decode().splitlines() == ["s", "Permission denied", "s"], r.stderr


def test_cwd_inside_a_mount_survives_filter_changes(tmp_path, guest_mode):
    """A shared mapping of a virtual file (msync and munmap are traced from then on) and
    a second module widen every process's filter; a cwd inside the mount stays there."""
    mnt = tmp_path / "m"
    mnt.mkdir()
    mapper = ("import mmap, os; fd = os.open('f', os.O_RDWR); m = mmap.mmap(fd, 0); "
              "m[0:1] = b'y'; m.close()")
    script = ("vu_insmod vufuse && vumount -t vufusememfs none %s && cd %s && mkdir d && "
              "cd d && echo x > f && python3 -c \"%s\" && /bin/pwd && cat f && "
              "vu_insmod vudev && /bin/pwd && ls" % (mnt, mnt, mapper))
    r = run(guest_mode, ["bash", "-c", script])
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == ["%s/d" % mnt, "y", "%s/d" % mnt, "f"]


COUNTING_FS = '''
import errno, json, os, stat, pyfuse3

REPORT = os.environ["COUNTING_REPORT"]
FILES = {b"f%02d" % i: (b"data of %d\\n" % i) * i for i in range(1, 41)}
INO = {name: 10 + i for i, name in enumerate(sorted(FILES))}
NAME = {ino: name for name, ino in INO.items()}

class Counting(pyfuse3.Operations):
    """Keeps the lookup count of each inode as libfuse says (lookup and every readdir
    entry add one, forget takes away) and writes what is still counted at destroy."""
    def __init__(self, source=None, options=None):
        super().__init__()
        self.counts, self.lookups = {}, 0
    def _attr(self, ino):
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        if ino == 1:
            a.st_mode, a.st_nlink = stat.S_IFDIR | 0o755, 2
        else:
            a.st_mode, a.st_nlink, a.st_size = stat.S_IFREG | 0o644, 1, len(FILES[NAME[ino]])
        a.attr_timeout = a.entry_timeout = 300
        return a
    def _count(self, ino):
        self.counts[ino] = self.counts.get(ino, 0) + 1
    async def getattr(self, inode, ctx=None):
        return self._attr(inode)
    async def lookup(self, parent, name, ctx=None):
        if parent != 1 or name not in INO:
            raise pyfuse3.FUSEError(errno.ENOENT)
        self.lookups += 1
        self._count(INO[name])
        return self._attr(INO[name])
    async def opendir(self, inode, ctx):
        return inode
    async def readdir(self, fh, start_id, token):
        names = sorted(FILES)
        for i in range(start_id, len(names)):
            if not pyfuse3.readdir_reply(token, names[i], self._attr(INO[names[i]]), i + 1):
                break
            self._count(INO[names[i]])
    async def open(self, inode, flags, ctx):
        return pyfuse3.FileInfo(fh=inode)
    async def read(self, fh, off, size):
        return FILES[NAME[fh]][off:off + size]
    async def forget(self, inode_list):
        for ino, n in inode_list:
            self.counts[ino] -= n
            if not self.counts[ino]:
                del self.counts[ino]
    def destroy(self):
        with open(REPORT, "w") as f:
            json.dump({"counted": len(self.counts), "lookups": self.lookups}, f)
'''


def test_readdir_entries_count_as_lookups(tmp_path, guest_mode):
    """As the kernel's READDIRPLUS: each entry a readdir gives counts as a lookup of its
    inode, whose attributes are kept (a glob then stat and cat of the files look nothing
    up again), and every count is forgotten by the unmount."""
    (tmp_path / "countfs.py").write_text(COUNTING_FS)
    host = tmp_path / "host"
    host.mkdir()
    for i in range(1, 41):
        (host / ("f%02d" % i)).write_bytes(b"data of %d\n" % i * i)
    script = "cd %s && stat -c '%%s %%A %%n' f* && cat f07 f40 | md5sum"
    native = run("native", ["bash", "-c", script % host])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    report = tmp_path / "report.json"
    r = run(guest_mode, ["bash", "-c", "vu_insmod vufuse && vumount -t vufuse -o fs=%s/"
                         "countfs.py none %s && (%s) && vuumount %s"
                         % (tmp_path, mnt, script % mnt, mnt)],
            env={"COUNTING_REPORT": str(report)})
    assert r.returncode == 0, r.stderr.decode()
    assert len(native.stdout.splitlines()) == 41
    assert r.stdout == native.stdout
    assert json.loads(report.read_text()) == {"counted": 0, "lookups": 0}
