"""The debug trace: `umvu -S -d s` against `strace -f` on the same program, line by line
after pids and addresses are taken out; `-d s` (the calls umvu intercepts, module lines
marked) and `-d S` (every call)."""
from __future__ import annotations

import difflib
import re
import shutil
import subprocess

import pytest

from conftest import BIN, UMVU, compile_prog

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace: make setup")

ENV = {"PATH": "%s:/usr/bin:/bin" % BIN, "LC_ALL": "C.UTF-8"}
# what umvu's trace shows otherwise than strace's, each with why
KNOWN = {
    # the first exec is the launcher's, made before the hypervisor traces the program
    # (strace shows the exec it made itself)
    re.compile(r'^execve\("\./traced", \["\./traced"\], ADDR /\* \d+ vars \*/\) = 0$'),
}


def normalize(line: str, pids: set[str]) -> str:
    line = re.sub(r"0x[0-9a-f]+", "ADDR", line)
    # (the CPU times of a child, and their seconds in a comment once not 0)
    line = re.sub(r"si_utime=\d+( /\* [\d.]+ s \*/)?, si_stime=\d+( /\* [\d.]+ s \*/)?",
                  "si_utime=T, si_stime=T", line)
    line = re.sub(r'^getrandom\("[^"]*"', 'getrandom("RANDOM"', line)
    line = re.sub(r"\s+= ", " = ", line)
    return re.sub(r"\b\d+\b", lambda m: "PID" if m.group(0) in pids else m.group(0), line)


def by_process(rows) -> list[str]:
    """(pid, line) rows as each process's lines in order, the processes in the order
    they first appear: how a parent's and a child's lines interleave is a race."""
    order: dict[str, list[str]] = {}
    for pid, line in rows:
        order.setdefault(pid, []).append(line)
    return [line for lines in order.values() for line in lines]


def strace_lines(path) -> list[str]:
    """strace -f -o's lines, the pid columns out and unfinished calls joined."""
    raw, pids = [], set()
    pending: dict[str, str] = {}
    for line in open(path).read().splitlines():
        pid, _, rest = line.partition(" ")
        rest = rest.lstrip()
        pids.add(pid)
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest[:-len("<unfinished ...>")].rstrip()
            continue
        m = re.match(r"<\.\.\. (\w+) resumed>(.*)", rest)
        if m and pid in pending:
            head = pending.pop(pid)
            rest = head + (" " if head.endswith(",") else "") + m.group(2)
        raw.append((pid, rest))
    return [normalize(line, pids) for line in by_process(raw)]


def umvu_lines(text: str) -> list[str]:
    raw, pids = [], set()
    for line in text.splitlines():
        m = re.match(r"\[pid (\d+)\] (.*?)(  \[[^]]*\])?$", line)
        if m is None:
            continue  # (umvu's own notices)
        pids.add(m.group(1))
        raw.append((m.group(1), m.group(2)))
    return [normalize(line, pids) for line in by_process(raw)]


def test_same_lines_as_strace(tmp_path, tmp_path_factory):
    """At least 90% of strace's lines are umvu's too, in each process's order; every
    other line of either side is a known difference."""
    prog = compile_prog(tmp_path_factory, "traced")
    shutil.copy(prog, tmp_path / "traced")
    (tmp_path / "data.txt").write_text("hello world\n")
    native = subprocess.run(["strace", "-f", "-o", str(tmp_path / "strace.txt"), "./traced"],
                            cwd=tmp_path, env=ENV, capture_output=True, timeout=60)
    guest = subprocess.run(UMVU + ["-S", "-d", "s", "-o", str(tmp_path / "umvu.txt"),
                                   "./traced"], cwd=tmp_path, env=ENV, capture_output=True,
                           timeout=120)
    assert native.returncode == guest.returncode == 3, (native.stderr, guest.stderr)
    theirs = strace_lines(tmp_path / "strace.txt")
    ours = umvu_lines((tmp_path / "umvu.txt").read_text())
    matcher = difflib.SequenceMatcher(None, theirs, ours, autojunk=False)
    same = sum(block.size for block in matcher.get_matching_blocks())
    differing = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            differing += ["strace: " + x for x in theirs[i1:i2]]
            differing += ["umvu:   " + x for x in ours[j1:j2]]
    unknown = [d for d in differing if not any(k.match(d[8:]) for k in KNOWN)]
    assert same >= 0.9 * len(theirs), "\n".join(differing)
    assert unknown == [], "\n".join(unknown)
    # the calls the program makes, decoded as strace decodes them
    for want in ('openat(AT_FDCWD, "data.txt", O_RDONLY) = 3',
                 'read(3, "hello world\\n", 64) = 12',
                 "ioctl(1, TCGETS, ADDR) = -1 ENOTTY (Inappropriate ioctl for device)",
                 "--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=PID, si_uid=0} ---",
                 'execve("/bin/true", ["true", "x"], ADDR /* 2 vars */) = 0',
                 "wait4(PID, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = PID",
                 "+++ exited with 3 +++"):
        assert want in ours, want


def test_intercepted_calls_and_their_module(tmp_path):
    """-d s without -S: a note first that only intercepted calls show; make on a small
    project inside a vufusememfs mount logs the calls the mount served marked with the
    module and mount point; calls of the host tree are the kernel's."""
    mnt = tmp_path / "m"
    mnt.mkdir()
    log = tmp_path / "t.log"
    script = ("vu_insmod vufuse && vumount -t vufusememfs none %s && cd %s && "
              "bash %s/tests/progs/cproj.sh" % (mnt, mnt, BIN.parent))
    r = subprocess.run(UMVU + ["-o", str(log), "-d", "s", "bash", "-c", script],
                       cwd=tmp_path, env=ENV, capture_output=True, timeout=300)
    assert r.returncode == 0 and r.stdout == b"result 42\n", r.stderr
    lines = log.read_text().splitlines()
    assert lines[0].startswith("umvu: -d s shows the calls umvu intercepts")
    tag = "  [vufuse %s]" % mnt
    marked = [line for line in lines if line.endswith(tag)]
    assert any(re.search(r'openat\(AT_FDCWD, "a\.c", O_WRONLY\|O_CREAT\|O_TRUNC, 0666\) '
                         r'+= 3', line) for line in marked), "\n".join(lines[:50])
    assert any(re.search(r'openat\(AT_FDCWD, "a\.c", O_RDONLY\|O_NOCTTY\) += 3', line)
               for line in marked)  # (cc1 reads it)
    assert any(re.search(r'stat\("a\.c", \{st_mode=S_IFREG\|0644, st_size=31, \.\.\.\}\) '
                         r'+= 0', line) for line in marked)  # (make)
    assert any(line.endswith("  [kernel]") for line in lines)
    assert any(re.match(r'\[pid \d+\] vu_insmod\("vufuse", 0\) += 0  \[umvu\]$', line)
               for line in lines)
    assert sum(1 for line in lines if "+++ exited with 0 +++" in line) >= 5


def test_traced_as_another_user(as_user):
    """-d s in a session of a user other than root: a read-only open of a file in a
    mount is given its memfd over umvu's socket, as untraced (a guest's own open of
    /proc/UMVU/fd/N fails EACCES: umvu is not dumpable)."""
    work = as_user.work / "traced"
    work.mkdir()
    subprocess.run(["chown", "nobody", str(work)], check=True)
    script = ("cd traced && mkdir m && vu_insmod vufuse && vumount -t vufusememfs none m && "
              "echo hello > m/f && cat m/f && python3 -c 'print(open(\"m/f\").read())' && "
              "vuumount m")
    r = as_user(["-o", "traced/t.log", "-d", "s", "bash", "-c", script], timeout=120)
    try:
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == b"hello\nhello\n\n"
        lines = (work / "t.log").read_text().splitlines()
        assert any(re.search(r'openat\(AT_FDCWD, "m/f", O_RDONLY\) += 3  \[vufuse ', line)
                   for line in lines), "\n".join(lines[-40:])
    finally:
        shutil.rmtree(work)


def test_plain_make_and_every_call(tmp_path):
    """-d s with no module: the note and the processes' ends (nothing else is
    intercepted); -d S: every call of ls, as strace shows them."""
    subprocess.run(["bash", str(BIN.parent / "tests/progs/cproj.sh")], cwd=tmp_path,
                   env=ENV, capture_output=True, check=True)
    log = tmp_path / "t.log"
    r = subprocess.run(UMVU + ["-o", str(log), "-d", "s", "make", "-B", "-s", "-C",
                               str(tmp_path / "cproj")], env=ENV, capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert text.startswith("umvu: -d s shows the calls umvu intercepts")
    assert "+++ exited with 0 +++" in text
    full = tmp_path / "full.log"
    r = subprocess.run(UMVU + ["-o", str(full), "-d", "S", "ls", str(tmp_path / "cproj")],
                       env=ENV, capture_output=True, timeout=120)
    assert r.returncode == 0 and b"main.c" in r.stdout
    ours = umvu_lines(full.read_text())
    assert any(re.match(r'openat\(AT_FDCWD, ".*/cproj", O_RDONLY\|O_NONBLOCK\|O_CLOEXEC\|'
                        r'O_DIRECTORY\) = 3', x) for x in ours), ours
    assert any(re.match(r'statx\(AT_FDCWD, ".*/cproj", AT_STATX_SYNC_AS_STAT\|AT_NO_AUTOMOUNT, '
                        r'STATX_MODE, \{stx_mask=.*stx_mode=S_IFDIR\|0755, ', x)
               for x in ours), ours
    assert any(x.startswith("getdents64(3, ADDR /* ") for x in ours)
    assert any(x.startswith('write(1, "') for x in ours)
    assert ours[-2:] == ["exit_group(0) = ?", "+++ exited with 0 +++"], ours[-5:]
