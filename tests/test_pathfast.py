"""The C loop decides path syscalls by itself when the kernel's walk of the path cannot
enter a virtual mount (performance issue, target 2): every way of reaching a mount point
(absolute, relative, dirfd, .., symlinks of the host into the mount, a cwd inside) must
give what the same tree gives natively, with the fast path and without it
(UMVU_PATHFAST=0 sends every path syscall to Python), and mount changes must be seen
at once."""
import os
import shutil
import subprocess

import pytest

from conftest import REPO, run

PROG = str(REPO / "tests" / "progs" / "pathcases.py")


# the guest's start: a memfs at {t}/mnt with what tree(top, True) puts there natively
MOUNT_AS_TREE = ("vu_insmod vufuse && vumount -t vufusememfs none {t}/mnt && "
                 "printf virt > {t}/mnt/x && mkdir {t}/mnt/sub && "
                 "printf yy > {t}/mnt/sub/y && ")


def tree(top, with_content):
    os.makedirs(top / "real")
    (top / "real" / "f").write_text("FFF")
    (top / "mnt").mkdir()
    if with_content:
        (top / "mnt" / "x").write_text("virt")
        (top / "mnt" / "sub").mkdir()
        (top / "mnt" / "sub" / "y").write_text("yy")


@pytest.mark.parametrize("pathfast", ["1", "0"])
def test_paths_into_a_mount_match_the_kernel(tmp_path, guest_mode, pathfast):
    nat_top = tmp_path / "n" / "t"
    tree(nat_top, True)
    native = run("native", ["python3", PROG, str(nat_top)], cwd=nat_top)
    assert native.returncode == 0, native.stderr
    top = tmp_path / "g" / "t"
    tree(top, False)
    script = (MOUNT_AS_TREE + "python3 {prog} {t}").format(t=top, prog=PROG)
    guest = run(guest_mode, ["bash", "-c", script], cwd=top, env={"UMVU_PATHFAST": pathfast})
    assert guest.returncode == 0, guest.stderr
    n_lines = native.stdout.decode().replace(str(nat_top), "T").splitlines()
    g_lines = guest.stdout.decode().replace(str(top), "T").splitlines()
    assert len(n_lines) > 130
    assert [(a, b) for a, b in zip(n_lines, g_lines) if a != b] == []
    assert len(n_lines) == len(g_lines)
    assert "mnt/x read ok b'virt'" in n_lines and "lnk_dir/x read ok b'virt'" in n_lines
    # all of it was virtual: the host's mount point is still empty
    assert os.listdir(top / "mnt") == []
    assert (top / "real" / "f").read_text() == "FFF"


def test_mount_changes_are_seen_at_once(tmp_path, guest_mode):
    for d in ("a", "b", "real"):
        (tmp_path / d).mkdir()
    (tmp_path / "real" / "f").write_text("R")
    os.symlink("a", tmp_path / "l")
    script = """
        vu_insmod vufuse
        vumount -t vufusememfs none a && echo A > a/f && cat a/f l/f
        python3 -c 'import os; os.rename("real/f", "l/f")' 2>&1 | tail -1
        python3 -c 'import os; os.link("real/f", "a/g")' 2>&1 | tail -1
        vuumount a; cat a/f l/f; ls a
        vumount -t vufusememfs none b && echo B > b/f && cat b/f
        vumount -M b a; cat a/f l/f; cat b/f; ls b
        cd a && cat f && cd .. && vuumount a
        cat l/f
    """
    r = run(guest_mode, ["bash", "-c", script], cwd=tmp_path)
    out = r.stdout.decode().splitlines()
    err = r.stderr.decode().splitlines()
    assert out == ["A", "A", "OSError: [Errno 18] Invalid cross-device link: 'real/f' -> 'l/f'",
                   "OSError: [Errno 18] Invalid cross-device link: 'real/f' -> 'a/g'",
                   "B", "B", "B", "B"], (out, err)
    assert err == ["cat: %s: No such file or directory" % p
                   for p in ("a/f", "l/f", "b/f", "l/f")], err
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "l", "real"]
    assert os.listdir(tmp_path / "a") == [] and os.listdir(tmp_path / "b") == []


def test_mount_point_below_a_name_the_host_lacks(tmp_path, guest_mode):
    """A real directory above a mount point renamed away: the C walk stops at the first
    name the host lacks; the answers must be those of the Python resolver (the mount
    stays at its guest path, now unreachable) and the session must go on."""
    outs = set()
    for pathfast in ("1", "0"):
        top = tmp_path / pathfast
        (top / "m" / "inner").mkdir(parents=True)
        script = ("vu_insmod vufuse && vumount -t vufusememfs none m/inner && "
                  "echo V > m/inner/x && cat m/inner/x && mv m m2; ln -s m sl; "
                  "cat m/inner/x {t}/m/inner/x sl/inner/x m/../m/inner/x m2/inner/x 2>&1; "
                  "mv m2 m && cat m/inner/x && vuumount m/inner && ls m/inner && echo end"
                  .format(t=top))
        r = run(guest_mode, ["bash", "-c", script], cwd=top, env={"UMVU_PATHFAST": pathfast})
        assert r.returncode == 0, r.stderr
        outs.add(r.stdout.decode().replace(str(top), "T"))
    assert len(outs) == 1
    assert outs.pop().splitlines() == [
        "V", "cat: m/inner/x: No such file or directory",
        "cat: T/m/inner/x: No such file or directory",
        "cat: sl/inner/x: No such file or directory",
        "cat: m/../m/inner/x: No such file or directory",
        "cat: m2/inner/x: No such file or directory", "V", "end"]


def test_paths_into_a_mount_as_unprivileged_user(as_user):
    """The C walk runs with the user's rights (an lstat it may not do leaves the path to
    Python); same answers as the same tree natively, as nobody."""
    work = as_user.work
    prog = work / "pathcases.py"
    shutil.copy(PROG, prog)
    shutil.copy(os.path.join(os.path.dirname(PROG), "caselib.py"), work / "caselib.py")
    for name, with_content in (("n", True), ("g", False)):
        top = work / name / "t"
        tree(top, with_content)
        (top / "closed").mkdir(mode=0o700)  # nobody may not look inside (root owns it)
        subprocess.run(["chown", "-R", "nobody", str(work / name)], check=True)
        subprocess.run(["chown", "root", str(top / "closed")], check=True)
    native = subprocess.run(["runuser", "-u", "nobody", "--", "python3", str(prog),
                             str(work / "n" / "t")], cwd=work / "n" / "t", capture_output=True)
    assert native.returncode == 0, native.stderr
    top = work / "g" / "t"
    script = (MOUNT_AS_TREE + "cd {t} && python3 {prog} {t}; ls closed/x 2>&1; "
              "cat closed/../mnt/x 2>&1").format(t=top, prog=prog)
    guest = as_user(["bash", "-c", script])
    n_lines = native.stdout.decode().replace(str(work / "n" / "t"), "T").splitlines()
    g_lines = guest.stdout.decode().replace(str(top), "T").splitlines()
    assert g_lines[:-2] == n_lines
    assert g_lines[-2:] == ["ls: cannot access 'closed/x': Permission denied",
                           "cat: closed/../mnt/x: Permission denied"]
    assert os.listdir(top / "mnt") == []


def test_cwd_and_umask_from_before_the_first_module(tmp_path, guest_mode):
    """No module, nothing followed: a cd and a umask made then (or after the last module
    went) must be known when a module comes."""
    (tmp_path / "d" / "mnt").mkdir(parents=True)
    script = """
        cd d; umask 077; vu_insmod vufuse
        vumount -t vufusememfs none mnt && echo v > mnt/v && cat {t}/d/mnt/v
        touch mnt/w; stat -c %a mnt/w
        vuumount mnt; vu_rmmod vufuse; cd mnt; umask 022; vu_insmod vufuse; cd ..
        vumount -t vufusememfs none mnt && echo v2 > mnt/v && cat {t}/d/mnt/v
        touch mnt/w; stat -c %a mnt/w
    """.format(t=tmp_path)
    r = run(guest_mode, ["bash", "-c", script], cwd=tmp_path)
    assert r.stdout.decode().split() == ["v", "600", "v2", "644"], r.stderr
    assert os.listdir(tmp_path / "d" / "mnt") == []
