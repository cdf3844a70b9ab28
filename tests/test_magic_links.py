"""Views that hold against magic links: /proc/*/root, /proc/*/cwd, /proc/*/fd/N,
/dev/fd/N, /proc/thread-self, /proc/self/.., and symlinks to them, name what they
point at in the guest's view (issue: views that hold, magic links).

Each form names a host tree under a view (read-only bind, copy-on-write, memfs) — the
cwd and a directory fd entered before the mount. Every form must behave as the plain
path does in the view, and the host tree stays byte for byte what it was."""
import os
import shutil
import subprocess

import pytest

from conftest import run
from test_vufs import tree_listing

# the guest's side: every write-like operation through every form of the tree's name
ATTACK = r'''
import errno, os, sys, threading
tree, umvu_pid, other_pid, scratch = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
tid = threading.get_native_id()
forms = [
    ("direct", tree),
    ("root_self", "/proc/self/root" + tree),
    ("root_thread", "/proc/thread-self/root" + tree),
    ("root_task", "/proc/self/task/%d/root%s" % (tid, tree)),
    ("root_pid", "/proc/%d/root%s" % (os.getpid(), tree)),
    ("root_umvu", "/proc/%s/root%s" % (umvu_pid, tree)),
    ("root_other", "/proc/%s/root%s" % (other_pid, tree)),
    ("link_root", scratch + "/to_root" + tree),
    ("cwd", "/proc/self/cwd"),
    ("link_cwd", scratch + "/to_cwd"),
    ("fd", "/proc/self/fd/7"),
    ("dev_fd", "/dev/fd/7"),
    ("thread_fd", "/proc/thread-self/fd/7"),
    ("dotdot", "/proc/self/../.." + tree),
    ("dotdot_fd", "/proc/self/fd/../../.." + tree),
]

def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]

def create(p):
    fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    os.write(fd, b"x")
    os.close(fd)

def append(p, data):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.write(fd, data)
    os.close(fd)

for tag, p in forms:
    results = [
        attempt(lambda: create(p + "/n_" + tag)),
        attempt(lambda: append(p + "/a", tag.encode())),
        attempt(lambda: os.chmod(p + "/a", 0o600)),
        attempt(lambda: os.mkdir(p + "/d_" + tag)),
        attempt(lambda: os.symlink("t", p + "/l_" + tag)),
        attempt(lambda: os.truncate(p + "/sub/s", 1)),
        attempt(lambda: os.rename(p + "/r_" + tag, p + "/moved_" + tag)),
        attempt(lambda: os.unlink(p + "/u_" + tag)),
        attempt(lambda: os.rmdir(p + "/e_" + tag)),
    ]
    print(tag, " ".join(results))
'''

FORMS = ["direct", "root_self", "root_thread", "root_task", "root_pid", "root_umvu",
         "root_other", "link_root", "cwd", "link_cwd", "fd", "dev_fd", "thread_fd", "dotdot",
         "dotdot_fd"]


def make_tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "a").write_text("original a\n")
    (root / "sub" / "s").write_text("s content\n")
    for tag in FORMS:
        (root / ("r_" + tag)).write_text("to rename\n")
        (root / ("u_" + tag)).write_text("to unlink\n")
        (root / ("e_" + tag)).mkdir()


def mount_of(view, top):
    """The vumount line putting view over top/tree."""
    if view == "ro":
        return f"vu_insmod vufs && vumount -t vufs -o ro {top}/src {top}/tree"
    if view == "cow":
        return f"vu_insmod vufs && vumount -t vufs -o cow {top}/upper {top}/tree"
    return f"vu_insmod vufuse && vumount -t vufusememfs none {top}/tree"


def attack(runner, top, view):
    """Make the tree, attack it under view; (outputs by form, host listings before and
    after). runner(argv) runs a command under umvu."""
    tree, scratch = top / "tree", top / "scratch"
    make_tree(tree)
    shutil.copytree(tree, top / "src")
    (top / "upper").mkdir()
    scratch.mkdir()
    (scratch / "to_root").symlink_to("/proc/self/root")
    (scratch / "to_cwd").symlink_to("/proc/self/cwd")
    (top / "attack.py").write_text(ATTACK)
    before = tree_listing(tree), tree_listing(top / "src")
    # the cwd and fd 7 are the host tree, entered before the mount
    script = f"""
        sleep 30 & other=$!
        cd {tree} && exec 7<{tree} && {mount_of(view, top)} || exit 9
        python3 {top}/attack.py {tree} $PPID $other {scratch}; st=$?
        kill $other; exit $st"""
    r = runner(["bash", "-c", script])
    assert r.returncode == 0, r.stderr.decode()
    lines = dict(line.split(" ", 1) for line in r.stdout.decode().splitlines())
    return lines, before, (tree_listing(tree), tree_listing(top / "src"))


EXPECTED_DIRECT = {
    # create append chmod mkdir symlink truncate rename unlink rmdir
    "ro": "EROFS " * 8 + "EROFS",
    "cow": "ok " * 8 + "ok",
    "memfs": "ok ENOENT ENOENT ok ok ENOENT ENOENT ENOENT ENOENT",
}


def check(lines, before, after, view, root_guest=True):
    assert lines["direct"] == EXPECTED_DIRECT[view]
    if not root_guest:  # umvu is not dumpable: its /proc/PID/root is root's alone
        assert lines.pop("root_umvu") == " ".join(["EACCES"] * 9)
        lines["root_umvu"] = lines["direct"]
    wrong = {tag: got for tag, got in lines.items() if got != lines["direct"]}
    assert wrong == {}, "forms that do not behave as the plain path: %s" % wrong
    assert set(lines) == set(FORMS)
    assert after == before  # the host tree (and the bind's source) byte for byte


@pytest.mark.parametrize("view", ["ro", "cow", "memfs"])
def test_magic_links_name_the_view(tmp_path, guest_mode, view):
    lines, before, after = attack(lambda argv: run(guest_mode, argv, timeout=120),
                                  tmp_path, view)
    check(lines, before, after, view)


@pytest.mark.parametrize("view", ["ro", "cow", "memfs"])
def test_magic_links_name_the_view_as_an_unprivileged_user(as_user, view):
    top = as_user.work / ("magic-" + view)
    if top.exists():
        shutil.rmtree(top)
    top.mkdir()

    def runner(argv):
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", "nobody", str(top)], check=True)
        return as_user(argv, timeout=120)
    lines, before, after = attack(runner, top, view)
    check(lines, before, after, view, root_guest=False)
