"""The cow layer never follows a symlink the guest made (issue: views that hold,
symlink tricks against cow): a link's target is a name in the guest's view, never one
umvu's host calls follow, and the upper layer's directories (its whiteouts' too) are
walked without following a link swapped in; the real tree stays byte for byte."""
import os
import shutil
import subprocess

from conftest import run
from test_vufs import tree_listing

FCHMODAT2 = r'''
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
tree = sys.argv[1]
os.symlink(tree + "/c", tree + "/l")  # a link to a lower file, by its view's name
r = libc.syscall(452, -100, (tree + "/l").encode(), 0o777, 0x100)  # AT_SYMLINK_NOFOLLOW
print("fchmodat2", "ok" if r == 0 else errno.errorcode[ctypes.get_errno()])
os.chmod(tree + "/l", 0o640)  # through the link: the view's c, copied up
print("c", oct(os.stat(tree + "/c").st_mode & 0o777))
'''

# One thread swaps the upper layer's directory d with a link to the real tree's sub
# (renameat2 RENAME_EXCHANGE, on the host: the upper layer is not under the view), so
# that d is a link half the time; the other creates, writes, chmods and removes files
# in the view's d, for two seconds.
SWAP = r'''
import ctypes, os, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
tree, upper, real_sub = sys.argv[1], sys.argv[2], sys.argv[3]
os.mkdir(tree + "/d")  # in the upper layer
os.symlink(real_sub, upper + "/d.link")
a, b = (upper + "/d").encode(), (upper + "/d.link").encode()
stop = time.time() + 2
def swapper():
    while time.time() < stop:
        libc.syscall(316, -100, a, -100, b, 2)  # renameat2(..., RENAME_EXCHANGE)
threading.Thread(target=swapper).start()
n = 0
while time.time() < stop:
    p = tree + "/d/f%d" % (n % 8)
    for op in (lambda: open(p, "w").write("x"), lambda: os.chmod(p, 0o600),
               lambda: os.truncate(p, 0), lambda: os.unlink(p),
               lambda: os.mkdir(p + ".d"), lambda: os.rmdir(p + ".d")):
        try:
            op()
        except OSError:
            pass
    n += 1
print("rounds", n > 0)
'''


def make(tmp_path):
    tree, upper = tmp_path / "tree", tmp_path / "upper"
    (tree / "sub").mkdir(parents=True)
    (tree / "c").write_text("lower c\n")
    os.chmod(tree / "c", 0o644)
    (tree / "a").write_text("lower a\n")
    (tree / "sub" / "s").write_text("lower s\n")
    upper.mkdir()
    return tree, upper


def cow(tree, upper):
    return f"vu_insmod vufs && vumount -t vufs -o cow {upper} {tree} || exit 9\n"


def test_chmod_of_a_link_is_the_kernels_answer_not_its_targets(tmp_path, guest_mode):
    tree, upper = make(tmp_path)
    (tmp_path / "p.py").write_text(FCHMODAT2)
    before = tree_listing(tree)
    native_dir = tmp_path / "native"
    shutil.copytree(tree, native_dir)
    native = run("native", ["python3", str(tmp_path / "p.py"), str(native_dir)])
    r = run(guest_mode, ["bash", "-c", cow(tree, upper) + f"python3 {tmp_path}/p.py {tree}"])
    assert r.returncode == native.returncode == 0, r.stderr
    assert r.stdout == native.stdout == b"fchmodat2 ENOTSUP\nc 0o640\n"
    assert tree_listing(tree) == before


def test_whiteouts_do_not_follow_a_link_made_in_their_place(tmp_path, guest_mode):
    tree, upper = make(tmp_path)
    before = tree_listing(tree)
    # the guest plants links where the whiteouts go: .- itself, then a directory in it
    script = cow(tree, upper) + f"""
        ln -s {tree} {upper}/.- && rm {tree}/a 2>/dev/null; echo rm-a=$?
        rm {upper}/.- && mkdir {upper}/.- && ln -s {tree}/sub {upper}/.-/sub
        rm {tree}/sub/s 2>/dev/null; echo rm-s=$?
        rm {upper}/.-/sub && rm {tree}/sub/s && ls {tree}/sub | wc -l"""
    r = run(guest_mode, ["bash", "-c", script])
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode().split()
    assert out[0] != "rm-a=0" and out[1] != "rm-s=0", out  # refused, not followed
    assert out[2] == "0"  # with real whiteout directories: removed in the view
    assert tree_listing(tree) == before


def test_upper_directories_swapped_for_links_lead_nowhere(tmp_path, guest_mode):
    tree, upper = make(tmp_path)
    (tmp_path / "p.py").write_text(SWAP)
    before = tree_listing(tree)
    r = run(guest_mode, ["bash", "-c", cow(tree, upper) +
                         f"python3 {tmp_path}/p.py {tree} {upper} {tree}/sub"], timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"rounds True\n"
    assert tree_listing(tree) == before


def test_symlink_tricks_as_an_unprivileged_user(as_user):
    """The three attacks above in one session of an unprivileged user, on a tree it owns."""
    top = as_user.work / "cow-links"
    shutil.rmtree(top, ignore_errors=True)
    top.mkdir()
    tree, upper = make(top)
    (top / "p.py").write_text(FCHMODAT2)
    (top / "s.py").write_text(SWAP)
    if os.getuid() == 0:
        subprocess.run(["chown", "-R", "nobody", str(top)], check=True)
    before = tree_listing(tree)
    script = cow(tree, upper) + f"""
        python3 {top}/p.py {tree} || exit 1
        python3 {top}/s.py {tree} {upper} {tree}/sub || exit 2
        ln -s {tree} {upper}/.- && rm {tree}/a 2>/dev/null; echo rm-a=$?"""
    r = as_user(["bash", "-c", script], timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split("\n")[:3] == ["fchmodat2 ENOTSUP", "c 0o640",
                                                 "rounds True"], r.stdout
    assert r.stdout.decode().split("\n")[3] != "rm-a=0"
    assert tree_listing(tree) == before
