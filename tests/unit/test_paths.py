"""umvu/core/paths.py: the resolver over small in-memory mounts and over a host tree
(compared with the kernel's own resolution of the same strings), rebase and within."""
import errno
import os
import stat
import subprocess
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

from umvu.core.paths import MAXSYMLINKS, NAME_MAX, Resolver, rebase, within
from umvu.core.process import ProcessTable
from umvu.core.registry import Entry, Responsibility

SETTINGS = settings(database=None, derandomize=True, deadline=None, max_examples=300)
DIR, FILE = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644


class Tree:
    """A service: an in-memory tree. ``spec``: {path: "dir" | "file" | bytes (a symlink's
    target)}, paths relative to the mount ("/" is its root, always a directory)."""

    def __init__(self, spec=None, excepts=()):
        self.nodes = {b"/": "dir"}
        self.nodes.update(spec or {})
        self.excepts = excepts
        self.asked = []  # the paths the resolver asked about

    def lstat(self, path):
        self.asked.append(path)
        node = self.nodes.get(path)
        if node is None:
            raise OSError(errno.ENOENT, "no such file")
        mode = DIR if node == "dir" else FILE if node == "file" else stat.S_IFLNK | 0o777
        return SimpleNamespace(st_mode=mode, st_ino=len(path))

    def readlink(self, path):
        self.asked.append(path)
        node = self.nodes.get(path)
        if not isinstance(node, bytes):
            raise OSError(errno.EINVAL, "not a symlink")
        return node


class HV:
    """What the resolver uses of the hypervisor: the table, the gate, the threads."""

    def __init__(self):
        self.table = Responsibility()
        self.procs = ProcessTable()
        self.cur_tid = 0

    def call(self, service, method, *args):
        return getattr(service, method)(*args)

    def mount(self, key, tree):
        return self.table.add(Entry("path", key, None, tree))


ROOT = {b"/d": "dir", b"/d/sub": "dir", b"/d/f": "file", b"/file": "file",
        b"/l_rel": b"d/f", b"/l_abs": b"/d/f", b"/l_dir": b"d", b"/d/up": b"..",
        b"/loop1": b"loop2", b"/loop2": b"loop1", b"/dangling": b"nonexist",
        b"/l_trailing": b"d/", b"/l_file_dir": b"file/", b"/l_mnt": b"/mnt/m",
        b"/mnt": "dir", b"/l_mnt_rel": b"mnt/m/x"}
MNT = {b"/m": "dir", b"/m/x": "file", b"/up": b"../d/f", b"/top": b"/file",
       b"/far_up": b"../../../../d", b"/self": b"."}


@pytest.fixture
def world():
    """A virtual root (ROOT) with a second tree (MNT) mounted at /mnt."""
    hv = HV()
    root, mnt = Tree(ROOT), Tree(MNT)
    hv.root_entry = hv.mount(b"/", root)
    hv.mnt_entry = hv.mount(b"/mnt", mnt)
    hv.trees = (root, mnt)
    return hv


def resolve(hv, path, base=b"/", **kw):
    return Resolver(hv).resolve(base, path, **kw)


def errno_of(hv, path, base=b"/", **kw):
    with pytest.raises(OSError) as e:
        resolve(hv, path, base, **kw)
    return e.value.errno


@pytest.mark.parametrize("path, want", [
    (b"/d/./f", b"/d/f"), (b"/./d/sub/.", b"/d/sub"), (b"/d/sub/../f", b"/d/f"),
    (b"/..", b"/"), (b"/../../d", b"/d"), (b"//d//sub///", b"/d/sub"), (b"/", b"/"),
    (b"///", b"/"), (b"/d/sub/..", b"/d"), (b"/d/sub/../..", b"/"),
])
def test_dots_and_slashes_canonicalize(world, path, want):
    r = resolve(world, path)
    assert (r.path, r.exists) == (want, True)
    assert stat.S_ISDIR(r.st.st_mode) or r.path == b"/d/f"


def test_relative_paths_and_dirfd_bases(world):
    assert resolve(world, b"f", base=b"/d").path == b"/d/f"
    assert resolve(world, b"../../file", base=b"/d/sub").path == b"/file"
    assert resolve(world, b".", base=b"/d/sub").path == b"/d/sub"
    assert resolve(world, b"..", base=b"/d/sub").path == b"/d"
    assert resolve(world, b"x", base=b"/mnt/m").path == b"/mnt/m/x"
    assert resolve(world, b"../../d/f", base=b"/mnt/m").path == b"/d/f"
    # an absolute path ignores the base
    assert resolve(world, b"/file", base=b"/mnt/m").path == b"/file"


def test_the_empty_path_is_enoent(world):
    assert errno_of(world, b"") == errno.ENOENT


def test_symlinks_inside_a_mount(world):
    for path, want in ((b"/l_rel", b"/d/f"), (b"/l_abs", b"/d/f"), (b"/l_dir/f", b"/d/f"),
                       (b"/d/up/file", b"/file"), (b"/l_dir/up/l_dir/sub", b"/d/sub"),
                       (b"/d/up", b"/"), (b"/l_dir/..", b"/")):
        r = resolve(world, path)
        assert (r.path, r.entry, r.rel) == (want, world.root_entry, want), path


def test_a_last_symlink_is_followed_only_when_asked(world):
    r = resolve(world, b"/l_rel", follow=False)
    assert r.path == b"/l_rel" and stat.S_ISLNK(r.st.st_mode)
    r = resolve(world, b"/dangling", follow=False)
    assert (r.path, r.exists) == (b"/dangling", True)
    r = resolve(world, b"/dangling")  # followed: its target does not exist
    assert (r.path, r.exists, r.st) == (b"/nonexist", False, None)
    assert errno_of(world, b"/dangling", must_exist=True) == errno.ENOENT


def test_a_trailing_slash_or_dot_follows_the_last_symlink(world):
    assert resolve(world, b"/l_dir/", follow=False).path == b"/d"
    assert resolve(world, b"/l_dir/.", follow=False).path == b"/d"
    r = resolve(world, b"/l_dir/", follow=False)
    assert r.trailing and stat.S_ISDIR(r.st.st_mode)
    # a symlink whose target ends with "/" must reach a directory
    assert resolve(world, b"/l_trailing").path == b"/d"
    assert errno_of(world, b"/l_file_dir") == errno.ENOTDIR


def test_entry_ops_on_a_new_name_with_a_trailing_slash(world):
    r = resolve(world, b"/d/newdir/", follow=False, entry_op=True)
    assert (r.path, r.exists, r.trailing) == (b"/d/newdir", False, True)


def test_symlinks_across_mount_points(world):
    root, mnt = world.root_entry, world.mnt_entry
    cases = [
        (b"/l_mnt", b"/mnt/m", mnt, b"/m"),          # into the mount, absolute
        (b"/l_mnt_rel", b"/mnt/m/x", mnt, b"/m/x"),  # into it, relative
        (b"/mnt/up", b"/d/f", root, b"/d/f"),        # out of it by ".."
        (b"/mnt/top", b"/file", root, b"/file"),     # out of it, absolute
        (b"/mnt/far_up", b"/d", root, b"/d"),        # ".." stops at "/"
        (b"/mnt/self", b"/mnt", mnt, b"/"),          # the mount point itself
        (b"/mnt", b"/mnt", mnt, b"/"),
        (b"/l_mnt/../up", b"/d/f", root, b"/d/f"),
    ]
    for path, want, entry, rel in cases:
        r = resolve(world, path)
        assert (r.path, r.entry, r.rel, r.crossed) == (want, entry, rel, True), path


def test_services_are_asked_only_canonical_paths(world):
    for path in (b"/l_mnt/../up", b"//l_dir/./up/mnt/./far_up/sub/", b"/mnt/self/self/m/x",
                 b"/d/sub/../../l_mnt_rel", b"/mnt/m/../../mnt/up"):
        resolve(world, path)
    asked = world.trees[0].asked + world.trees[1].asked
    assert len(asked) > 20
    for p in asked:
        assert p.startswith(b"/") and b"//" not in p and (p == b"/" or not p.endswith(b"/"))
        assert b"." not in p.split(b"/"), p
        assert b".." not in p.split(b"/"), p


def test_a_mount_of_the_kernel_tree_sees_what_the_service_says(world):
    # the tree mounted at /mnt shadows whatever the root tree has below /mnt
    world.trees[0].nodes[b"/mnt/m"] = "file"
    assert stat.S_ISDIR(resolve(world, b"/mnt/m").st.st_mode)


def test_symlink_loops_give_eloop(world):
    assert errno_of(world, b"/loop1") == errno.ELOOP
    assert errno_of(world, b"/loop1/x") == errno.ELOOP
    assert errno_of(world, b"/loop1/", follow=False) == errno.ELOOP
    r = resolve(world, b"/loop1", follow=False)  # not followed: the link itself
    assert r.path == b"/loop1"


def test_eloop_after_exactly_maxsymlinks_links():
    spec = {b"/target": "file"}
    n = MAXSYMLINKS + 1
    for i in range(n):  # c0 -> c1 -> ... -> c40 -> target
        spec[b"/c%d" % i] = b"c%d" % (i + 1) if i + 1 < n else b"target"
    hv = HV()
    hv.mount(b"/", Tree(spec))
    assert resolve(hv, b"/c1").path == b"/target"  # 40 links
    assert errno_of(hv, b"/c0") == errno.ELOOP    # 41 links


def test_a_file_in_the_middle_gives_enotdir(world):
    for path in (b"/file/x", b"/file/", b"/file/.", b"/file/..", b"/d/f/sub/x",
                 b"/l_rel/", b"/mnt/m/x/"):
        assert errno_of(world, path) == errno.ENOTDIR, path


def test_a_missing_directory_in_the_middle_gives_enoent(world):
    assert errno_of(world, b"/nodir/x") == errno.ENOENT
    assert errno_of(world, b"/mnt/nodir/x") == errno.ENOENT
    r = resolve(world, b"/d/missing")
    assert (r.path, r.exists, r.st) == (b"/d/missing", False, None)
    assert errno_of(world, b"/d/missing", must_exist=True) == errno.ENOENT


def test_a_component_longer_than_name_max_gives_enametoolong(world):
    assert resolve(world, b"/d/" + b"n" * NAME_MAX).exists is False
    assert errno_of(world, b"/d/" + b"n" * (NAME_MAX + 1)) == errno.ENAMETOOLONG
    assert errno_of(world, b"n" * (NAME_MAX + 1) + b"/x", base=b"/d") == errno.ENAMETOOLONG
    world.trees[0].nodes[b"/longlink"] = b"d/" + b"n" * (NAME_MAX + 1)
    assert errno_of(world, b"/longlink") == errno.ENAMETOOLONG


def test_a_hole_in_a_mount_shows_what_is_below():
    hv = HV()
    root = hv.mount(b"/", Tree({b"/m": "dir", b"/m/hole": "dir", b"/m/hole/f": "file"}))
    top = hv.mount(b"/m", Tree({b"/a": "file"}, excepts=(b"/m/hole",)))
    r = resolve(hv, b"/m/hole/f")
    assert (r.path, r.entry, r.rel) == (b"/m/hole/f", root, b"/m/hole/f")
    r = resolve(hv, b"/m/a")
    assert (r.entry, r.rel) == (top, b"/a")


def test_paths_outside_every_mount_are_the_kernels(tmp_path):
    base = os.fsencode(os.path.realpath(tmp_path))
    os.mkdir(base + b"/real")
    os.symlink(b"real", base + b"/lnk")
    hv = HV()
    hv.mount(base + b"/virt", Tree({b"/f": "file"}))
    r = resolve(hv, b"lnk/../real/.", base=base)
    assert (r.path, r.entry, r.crossed) == (base + b"/real", None, False)
    assert r.st.st_ino == os.stat(base + b"/real").st_ino
    os.symlink(base + b"/virt/f", base + b"/into")  # a host symlink into the mount
    r = resolve(hv, base + b"/into")
    assert (r.path, r.rel, r.crossed) == (base + b"/virt/f", b"/f", True)


def test_proc_magic_links_name_what_they_point_at_in_the_view():
    """/proc/self (the caller's, not the resolver's), .../root, .../cwd and .../fd/N of
    a real process, a guest whose cwd and fd 50 are in a mount: each link is what it
    names in the view, and the walk goes on from there; what names no path stays."""
    hv = HV()
    hv.mnt_entry = hv.mount(b"/mnt", Tree(MNT))
    hv.vfs = SimpleNamespace(guest_of_host=lambda host: host)
    hv.api = SimpleNamespace(kernel_ids=lambda: (os.getuid(), os.getgid(), set()))
    spare = os.open("/dev/null", os.O_RDONLY)
    os.dup2(spare, 50)
    try:
        child = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 pass_fds=(50,))
    finally:
        os.close(50)
        os.close(spare)
    try:
        pid = child.pid
        t = hv.procs.add_initial(pid, cwd=b"/mnt/m")
        t.fs.kernel_cwd = False  # the guest's cwd is in the mount
        t.files.set(50, SimpleNamespace(entry=hv.mnt_entry, path=b"/mnt/m/x", refs=1))
        hv.cur_tid = pid
        for path, want in (
                (b"/proc/self/cwd", b"/mnt/m"), (b"/proc/self/cwd/x", b"/mnt/m/x"),
                (b"/proc/thread-self/cwd/../m/x", b"/mnt/m/x"),
                (b"/proc/%d/task/%d/cwd" % (pid, pid), b"/mnt/m"),
                (b"/proc/self/fd/50", b"/mnt/m/x"), (b"/proc/self/root/mnt/m/x", b"/mnt/m/x"),
                (b"/proc/thread-self/root/mnt", b"/mnt"), (b"/proc/self/fd/0", b"/dev/null"),
                (b"/proc/self/../../mnt/m", b"/mnt/m"), (b"/proc/self/fd/../../../mnt", b"/mnt")):
            r = resolve(hv, path)
            assert (r.path, r.crossed) == (want, True), path
        # what names no path (a pipe, the program), and a link not followed, stay
        for path, want in ((b"/proc/self/fd/2", b"/proc/%d/fd/2" % pid),
                           (b"/proc/self/exe", b"/proc/%d/exe" % pid)):
            assert resolve(hv, path).path == want, path
        assert resolve(hv, b"/proc/self/fd/50", follow=False).path == b"/proc/%d/fd/50" % pid
        assert resolve(hv, b"/proc/self", follow=False).path == b"/proc/self"
        assert not resolve(hv, b"/proc/self/fd/99").exists  # (the kernel says ENOENT)
        assert errno_of(hv, b"/proc/self/fd/99/x") == errno.ENOENT
        t.fs.kernel_cwd = True  # the kernel's cwd, as umvu keeps it
        assert resolve(hv, b"/proc/self/cwd/x").path == b"/mnt/m/x"
    finally:
        child.kill()
        child.wait()


# ------------------------------------------------------------------ against the kernel
HOST_LINKS = {"l_rel": "d/f", "l_dir": "d", "l_dotdot": "..", "loop1": "loop2",
              "loop2": "loop1", "self": "self", "dangling": "nonexist", "l_chain": "l_rel",
              "l_trailing": "d/", "l_file_dir": "file/", "d/up": "..", "d/sub/up2": "../..",
              "l_loopdir": "l_loopdir/x"}
NAMES = ["d", "sub", "f", "g", "file", "missing", "up", "up2", ".", "..", "", "l_abs",
         "l_virt", "virt"] + sorted(HOST_LINKS)
LIKELY = ["d", "d", "sub", ".", "..", "..", "virt", "virt", "l_dir", "l_virt", "up"]


class HostTree:
    """A service showing a host directory as it is (so the resolver has to agree with the
    kernel on every path)."""

    def __init__(self, root: bytes):
        self.root = root

    def host(self, path):
        return self.root if path == b"/" else self.root + path

    def lstat(self, path):
        return os.lstat(self.host(path))

    def readlink(self, path):
        return os.readlink(self.host(path))


@pytest.fixture(scope="module")
def host_world(tmp_path_factory):
    top = os.fsencode(os.path.realpath(tmp_path_factory.mktemp("resolve")))
    # deep enough that no drawn path climbs out of top (a component climbs 2 at most)
    root = top + b"/n" * 13 + b"/tree"
    os.makedirs(root + b"/d/sub")
    os.makedirs(root + b"/virt/d/sub")
    for p in (b"/d/f", b"/d/sub/g", b"/file", b"/virt/d/f"):
        open(root + p, "w").close()
    for name, target in HOST_LINKS.items():
        os.symlink(target, os.path.join(os.fsdecode(root), name))
        os.symlink(target, os.path.join(os.fsdecode(root), "virt", name))
    os.symlink(root + b"/d/f", root + b"/l_abs")
    os.symlink(root + b"/virt/d", root + b"/l_virt")
    os.symlink(root + b"/d", root + b"/virt/l_virt")  # out of the mount
    os.symlink(root + b"/virt/d/f", root + b"/virt/l_abs")
    hv = HV()
    hv.mount(root + b"/virt", HostTree(root + b"/virt"))
    dirfds = {b: os.open(b, os.O_PATH | os.O_DIRECTORY)
              for b in (root, root + b"/d/sub", root + b"/virt", root + b"/virt/d")}
    yield hv, root, dirfds
    for fd in dirfds.values():
        os.close(fd)


def kernel_answer(path: bytes, dirfd: int, follow: bool):
    """The canonical path the kernel opens for path (relative to dirfd), or its errno."""
    try:
        fd = os.open(path, os.O_PATH | (0 if follow else os.O_NOFOLLOW), dir_fd=dirfd)
    except OSError as e:
        return e.errno
    try:
        return os.fsencode(os.readlink("/proc/self/fd/%d" % fd)), \
            stat.S_IFMT(os.fstat(fd).st_mode) if follow else None
    finally:
        os.close(fd)


def resolver_answer(hv, base: bytes, path: bytes, follow: bool):
    try:
        r = Resolver(hv).resolve(base, path, follow=follow, must_exist=True)
    except OSError as e:
        return e.errno
    return r.path, stat.S_IFMT(r.st.st_mode) if follow else None


def draw_path(data, root: bytes, base: bytes) -> bytes:
    """A path walked from base (or the tree's root): each component mostly a name in
    the directory reached so far (as the kernel reaches it), else any name."""
    absolute = data.draw(st.booleans())
    cur = root if absolute else base
    comps = []
    for _ in range(data.draw(st.integers(1, 6))):
        try:
            here = sorted(os.listdir(cur)) + [".", ".."]
        except OSError:
            here = []
        pick = st.sampled_from(here) if here and data.draw(st.integers(0, 3)) \
            else st.sampled_from(NAMES)
        c = os.fsencode(data.draw(pick))
        comps.append(c)
        nxt = os.path.join(cur, c)
        cur = os.fsencode(os.path.realpath(nxt)) if os.path.isdir(nxt) else b"/nonexistent"
    slash = b"/" if data.draw(st.booleans()) else b""
    return (root + b"/" if absolute else b"") + b"/".join(comps) + slash


@SETTINGS
@given(data=st.data(), base=st.sampled_from([b"", b"/d/sub", b"/virt", b"/virt/d"]),
       follow=st.booleans())
def test_the_resolver_agrees_with_the_kernel(host_world, data, base, follow):
    hv, root, dirfds = host_world
    path = draw_path(data, root, root + base)
    want = kernel_answer(path, dirfds[root + base], follow)
    got = resolver_answer(hv, root + base, path, follow)
    assert got == want


def test_the_kernel_comparison_sees_every_outcome(host_world):
    hv, root, dirfds = host_world
    outcomes = set()
    for path in (b"d/f", b"missing", b"file/x", b"loop1", b"virt/l_virt/f", b"l_virt/f"):
        got = resolver_answer(hv, root, path, True)
        assert got == kernel_answer(path, dirfds[root], True)
        outcomes.add(got if isinstance(got, int) else got[0])
    assert outcomes == {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, root + b"/d/f",
                        root + b"/virt/d/f"}


# ------------------------------------------------------------------ rebase and within
@pytest.mark.parametrize("path, prefix, want", [
    (b"/a", b"/a", True), (b"/a/b", b"/a", True), (b"/a/b/c", b"/a/b", True),
    (b"/ab", b"/a", False), (b"/a", b"/a/b", False), (b"/", b"/a", False),
    (b"/anything", b"/", True), (b"/", b"/", True), (b"/a/b", b"/a/", True),
    (b"/b/a", b"/a", False),
])
def test_within(path, prefix, want):
    assert within(path, prefix) is want


@pytest.mark.parametrize("path, old, new, want", [
    (b"/a/b/c", b"/a", b"/x", b"/x/b/c"), (b"/a", b"/a", b"/x/y", b"/x/y"),
    (b"/a/b", b"/a", b"/", b"/b"), (b"/a", b"/a", b"/", b"/"),
    (b"/b", b"/", b"/x", b"/x/b"), (b"/a/b", b"/a/", b"/x/", b"/x/b"),
    (b"/", b"/", b"/x", b"/x"),
])
def test_rebase(path, old, new, want):
    assert rebase(path, old, new) == want


comp = st.text("abc", min_size=1, max_size=3).map(str.encode)
canonical = st.lists(comp, max_size=4).map(lambda cs: b"/" + b"/".join(cs))


@SETTINGS
@given(old=canonical.filter(lambda p: p != b"/"), below=st.lists(comp, max_size=3),
       new=canonical.filter(lambda p: p != b"/"))
def test_rebase_moves_a_path_and_back(old, below, new):
    path = b"/".join([old] + below)
    moved = rebase(path, old, new)
    assert within(moved, new)
    assert moved == b"/".join([new] + below)
    assert rebase(moved, new, old) == path
