"""Virtual fds behave like the kernel's fds (issue: modules framework, virtual fds)."""
import os
import shutil
import subprocess

import pytest

from conftest import REPO, run

PROG = str(REPO / "tests" / "progs" / "vfd.py")


def test_virtual_fds_match_kernel(tmp_path, guest_mode):
    native_dir, guest_dir = tmp_path / "n", tmp_path / "g"
    native_dir.mkdir()
    guest_dir.mkdir()
    native = run("native", ["python3", PROG, str(native_dir)])
    guest = run(guest_mode, ["bash", "-c", "vu_insmod unreal && python3 %s /unreal%s"
                             % (PROG, guest_dir)])
    assert native.returncode == 0, native.stderr
    assert guest.returncode == 0, guest.stderr
    n_lines = native.stdout.decode().splitlines()
    assert len(n_lines) >= 29
    assert guest.stdout.decode().splitlines() == n_lines
    # and the files landed on the host, through the module
    assert (guest_dir / "data").read_bytes() == (native_dir / "data").read_bytes()
    assert sorted(os.listdir(guest_dir / "dir")) == ["a", "b", "c"]


def test_fd_tables_shared_and_copied(tmp_path, guest_mode):
    """Calls on a real fd stop nowhere; on a virtual one the caller's process traps them
    from the moment it has it: a CLONE_FILES process, threads, a forked child, and one
    process with more virtual fds than per-fd filters (memfs files, read by a C
    program)."""
    prog = tmp_path / "sharedfds"
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(prog),
                    str(REPO / "tests" / "progs" / "sharedfds.c")], check=True)
    native_dir = tmp_path / "n"
    native_dir.mkdir()
    make = "; ".join("printf 'file %d\\n' > f%d" % (i, i) for i in range(20))
    subprocess.run(["sh", "-c", make], cwd=native_dir, check=True)
    native = run("native", [str(prog), str(native_dir)])
    mnt = tmp_path / "m"
    mnt.mkdir()
    guest = run(guest_mode, ["sh", "-c", "vu_insmod vufuse && vumount -t vufusememfs none "
                             "%s && cd %s && %s && %s %s" % (mnt, mnt, make, prog, mnt)],
                env={"UMVU_FD_TRAPS": "8"})  # 20 virtual fds: past 8, by number
    assert native.returncode == 0 and guest.returncode == 0, guest.stderr
    lines = native.stdout.decode().splitlines()
    assert "shared offset read: l" in lines and len(lines) == 45, lines
    assert guest.stdout.decode().splitlines() == lines


CONTENT_PROG = str(REPO / "tests" / "progs" / "contentfd.py")


def both_ways(tmp_path, guest_mode, fs, argv, env=None):
    """argv DIR natively in a directory, then in guest_mode (with env) in a mount of fs
    (a memfs, or a new ext4 image); returns (native, guest, the mount's source)."""
    native_dir, mnt = tmp_path / "n", tmp_path / "m"
    native_dir.mkdir()
    mnt.mkdir()
    native = run("native", argv + [str(native_dir)])
    source = "none"
    if fs == "vufuseext2":
        source = tmp_path / "img"
        subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal",
                        str(source), "64M"], check=True, capture_output=True)
    guest = run(guest_mode, ["sh", "-c", "vu_insmod vufuse && vumount -t %s -o rw+ %s %s "
                             "&& %s %s" % (fs, source, mnt, " ".join(argv), mnt)], env=env)
    return native, guest, source


@pytest.mark.parametrize("fs", ["vufusememfs", "vufuseext2"])
def test_read_only_and_directory_fds_match_kernel(tmp_path, guest_mode, fs):
    """A read-only open of a module's regular file is a memfd of its data (read, lseek,
    mmap run in the kernel) and a directory fd an empty real directory: offsets, mmap,
    writes through other fds, truncation, unlink, exec, errors as on the kernel."""
    check_content(fs, *both_ways(tmp_path, guest_mode, fs, ["python3", CONTENT_PROG]))


def check_content(fs, native, guest, source):
    """contentfd.py said the same in the mount as natively; an image is still clean."""
    assert native.returncode == 0, native.stderr
    assert guest.returncode == 0, guest.stderr
    lines = native.stdout.decode().splitlines()
    assert lines[-1] == "done" and len(lines) == 33, lines
    assert guest.stdout.decode().splitlines() == lines
    if fs == "vufuseext2":
        fsck = subprocess.run(["e2fsck", "-fn", str(source)], capture_output=True)
        assert fsck.returncode == 0, fsck.stdout


def test_read_only_fds_as_unprivileged_user(as_user):
    """The guest opens umvu's memfd through /proc/<umvu>/fd as the same unprivileged
    user; the same program run natively by that user says the same."""
    work = as_user.work
    prog = work / "contentfd.py"
    shutil.copy(CONTENT_PROG, prog)
    os.chmod(prog, 0o644)
    native_dir = work / "contentfd-n"
    native_dir.mkdir()
    user = ["runuser", "-u", "nobody", "--"] if os.getuid() == 0 else []
    if user:
        shutil.chown(native_dir, "nobody")
    native = subprocess.run(user + ["python3", str(prog), str(native_dir)],
                            capture_output=True)
    assert native.returncode == 0, native.stderr
    guest = as_user(["sh", "-c", "mkdir contentfd-m && vu_insmod vufuse && vumount -t "
                     "vufusememfs none contentfd-m && python3 %s $PWD/contentfd-m" % prog])
    assert guest.returncode == 0, guest.stderr
    lines = native.stdout.decode().splitlines()
    assert lines[-1] == "done"
    assert guest.stdout.decode().splitlines() == lines


def test_what_the_guest_holds_for_virtual_fds(tmp_path):
    """Seen from the host: a read-only open of a module's file is umvu's memfd, a
    writable one an eventfd, a directory umvu's empty placeholder directory."""
    mnt = tmp_path / "m"
    mnt.mkdir()
    script = ("vu_insmod vufuse && vumount -t vufusememfs none %s && mkdir %s/d && "
              "echo data > %s/f && exec 3<%s/f 4>>%s/f 5<%s/d && echo $$ && read line && "
              "cat <&3" % ((mnt,) * 6))
    guest = subprocess.Popen([str(REPO / "bin" / "umvu"), "sh", "-c", script],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        pid = int(guest.stdout.readline())
        links = [os.readlink("/proc/%d/fd/%d" % (pid, fd)) for fd in (3, 4, 5)]
    finally:
        out, _ = guest.communicate(b"\n", timeout=60)
    assert links[0].startswith("/memfd:umvu-content"), links
    assert links[1] == "anon_inode:[eventfd]", links
    assert links[2].endswith("/dir") and "umvu-" in links[2], links
    assert out == b"data\n" and guest.returncode == 0


@pytest.mark.parametrize("fs", ["vufusememfs", "vufuseext2"])
def test_entries_listed_then_stat_by_dirfd(tmp_path, guest_mode, fs):
    """getdents64 then fstatat(dirfd, name) (the C loop answers these from the listing)
    before and after chmod, utimens, a child's truncate, rename, link, unlink, append."""
    prog = tmp_path / "dirplus"
    subprocess.run(["gcc", "-O1", "-o", str(prog), str(REPO / "tests" / "progs" /
                                                         "dirplus.c")], check=True)
    native, guest, _ = both_ways(tmp_path, guest_mode, fs, [str(prog)])
    assert native.returncode == 0 and guest.returncode == 0, guest.stderr
    lines = native.stdout.decode().splitlines()
    assert lines[-1] == "done" and len(lines) == 40, lines
    assert guest.stdout.decode().splitlines() == lines
