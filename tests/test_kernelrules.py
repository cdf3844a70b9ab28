"""umvu.kernelrules against the kernel itself: each rule is asked the same question the
kernel answers on a real ext4 directory (the test's tmp dir) and on tmpfs (/dev/shm),
by a child process holding the credentials in question, and the answers compared."""
import errno
import os
import stat
import tempfile

import pytest

from umvu import kernelrules as kr

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to take other ids")

OWNER, GROUP = 1000, 1000
CREDS = [kr.Cred(0, 0), kr.Cred(OWNER, GROUP), kr.Cred(1001, GROUP),
         kr.Cred(1001, 1001, frozenset({GROUP})), kr.Cred(1001, 1001),
         kr.Cred(OWNER, 1001), kr.Cred(1002, 1002, frozenset({1001, 1003}))]


@pytest.fixture(params=["ext4", "tmpfs"])
def top(request, tmp_path):
    base = str(tmp_path) if request.param == "ext4" else "/dev/shm"
    d = tempfile.mkdtemp(dir=base)
    os.chmod(d, 0o777)
    # (every directory above must be searchable by the other ids)
    for p in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
        os.chmod(p, os.stat(p).st_mode | 0o011)
    yield d
    os.system("rm -rf '%s'" % d)


def as_cred(cred, fn):
    """fn() run in a child with cred as its ids; its result (or errno) back."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups(sorted(cred.groups))
            os.setresgid(cred.gid, cred.gid, cred.gid)
            os.setresuid(cred.uid, cred.uid, cred.uid)
            os.umask(0)
            try:
                out = repr(fn())
            except OSError as e:
                out = repr(("errno", e.errno))
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return eval(data.decode())


def ask(fn):
    try:
        return fn()
    except OSError as e:
        return ("errno", e.errno)


def made(top, name, mode, uid=OWNER, gid=GROUP, kind="file"):
    p = os.path.join(top, name)
    if kind == "dir":
        os.mkdir(p)
    else:
        with open(p, "w") as f:
            f.write("x")
    os.chown(p, uid, gid)
    os.chmod(p, mode)
    return p


MODES = [0o000, 0o700, 0o070, 0o007, 0o750, 0o705, 0o075, 0o644, 0o111, 0o001, 0o100]


def test_permission(top):
    paths = {m: made(top, "f%o" % m, m) for m in MODES}
    dirs = {m: made(top, "d%o" % m, m, kind="dir") for m in MODES}
    for cred in CREDS:
        kernel = as_cred(cred, lambda: {(kind, m, want): os.access(p, want)
                                        for kind, group in (("f", paths), ("d", dirs))
                                        for m, p in group.items() for want in range(1, 8)})
        ours = {(kind, m, want): kr.permitted(os.stat(p), want, cred)
                for kind, group in (("f", paths), ("d", dirs))
                for m, p in group.items() for want in range(1, 8)}
        assert ours == kernel, cred


def test_chmod(top):
    for cred in CREDS:
        for gid in (GROUP, 1001, 1003):
            for mode in (0o2755, 0o4755, 0o6777, 0o644):
                p = made(top, "c", 0o644, gid=gid)
                kernel = as_cred(cred, lambda: os.chmod(p, mode) or
                                 stat.S_IMODE(os.stat(p).st_mode))
                ours = ask(lambda: kr.chmod_mode(os.stat(p), mode, cred))
                assert ours == kernel, (cred, gid, oct(mode))
                os.unlink(p)


def test_chown(top):
    for cred in CREDS:
        for uid, gid in ((-1, -1), (OWNER, -1), (1001, -1), (-1, GROUP), (-1, 1001),
                         (-1, 1003), (OWNER, 1001), (0, 0)):
            for mode in (0o6755, 0o2745, 0o4755, 0o2755, 0o755):
                p = made(top, "o", mode)
                st = os.stat(p)
                kernel = as_cred(cred, lambda: os.chown(p, uid, gid) or
                                 stat.S_IMODE(os.stat(p).st_mode))

                def rule():
                    kr.may_chown(st, uid, gid, cred)
                    after = kr.mode_after_chown(st, gid, cred)
                    return stat.S_IMODE(st.st_mode if after is None else after)
                assert ask(rule) == kernel, (cred, uid, gid, oct(mode))
                os.unlink(p)


def test_new_entries_in_a_setgid_directory(top):
    d = made(top, "sg", 0o2777, gid=1003, kind="dir")
    plain = made(top, "plain", 0o777, gid=1003, kind="dir")
    for cred in CREDS:
        for parent in (d, plain):
            for mode, kind in ((0o2775, "file"), (0o2765, "file"), (0o755, "dir"),
                               (0o2755, "dir")):
                p = os.path.join(parent, "n")

                def make():
                    if kind == "dir":
                        os.mkdir(p, mode)
                    else:
                        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, mode))
                    st = os.stat(p)
                    return st.st_gid, stat.S_IMODE(st.st_mode)
                kernel = as_cred(cred, make)
                fmt = stat.S_IFDIR if kind == "dir" else stat.S_IFREG
                gid, want = kr.init_owner(os.stat(parent), fmt | (
                    kr.mkdir_mode(mode) if kind == "dir" else mode), cred)
                assert (gid, stat.S_IMODE(want)) == kernel, (cred, parent, kind, oct(mode))
                os.rmdir(p) if kind == "dir" else os.unlink(p)


def test_sticky_directory(top):
    d = made(top, "st", 0o1777, kind="dir")
    for cred in CREDS:
        for owner in (OWNER, 1001, 1002, 0):
            p = made(d, "v", 0o666, uid=owner)
            ours = ask(lambda: kr.may_delete(os.stat(d), os.stat(p), cred))
            kernel = as_cred(cred, lambda: os.unlink(p))
            assert ours == kernel, (cred, owner)
            if os.path.exists(p):
                os.unlink(p)


def test_times(top):
    for cred in CREDS:
        for mode in (0o666, 0o644, 0o600, 0o646):
            for touch in (True, False):
                p = made(top, "t", mode)
                times = None if touch else (1, 2)
                st = os.stat(p)
                kernel = as_cred(cred, lambda: os.utime(p, times))
                ours = ask(lambda: kr.may_utimens(
                    st, touch, cred, lambda: kr.permission(st, kr.W, cred)))
                assert ours == kernel, (cred, oct(mode), touch)
                os.unlink(p)


def test_writes_drop_set_id_bits(top):
    for cred in CREDS:
        for mode in (0o6777, 0o2767, 0o4777, 0o2777, 0o777):
            p = made(top, "w", mode)

            def write():
                with open(p, "a") as f:
                    f.write("y")
                return stat.S_IMODE(os.stat(p).st_mode)
            after = kr.mode_after_write(os.stat(p), cred)
            kernel = as_cred(cred, write)
            assert stat.S_IMODE(mode if after is None else after) == kernel, (cred, oct(mode))
            os.unlink(p)


def test_xattrs(top):
    target = made(top, "tgt", 0o666)
    for cred in CREDS:
        for name in (b"user.a", b"trusted.a"):
            for kind in ("file", "link"):
                for mode in (0o666, 0o644):
                    p = made(top, "x", mode) if kind == "file" else os.path.join(top, "x")
                    if kind == "link":
                        os.symlink(target, p)
                        os.lchown(p, OWNER, GROUP)
                    kernel = as_cred(cred, lambda: os.setxattr(
                        p, name, b"v", follow_symlinks=False))
                    if kernel == ("errno", errno.EOPNOTSUPP):
                        continue  # (tmpfs has no user xattrs on symlinks: not a rule)
                    st = os.lstat(p)
                    ours = ask(lambda: kr.may_xattr(
                        st, name, cred, lambda: kr.permission(st, kr.W, cred)))
                    assert ours == kernel, (cred, name, kind, oct(mode))
                    os.unlink(p)
