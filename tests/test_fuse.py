"""The fuse module: unmodified FUSE daemons inside umvu, on its virtual /dev/fuse,
compared with the same daemon on the host's kernel FUSE (as root), on the same input:
the same listing (modes, owners, sizes, times, link targets, contents, xattrs), and
images e2fsck-clean after a read-write run. The daemons run multi-threaded, as by
default: libfuse's unmount then cancels the other workers (pthread_cancel), whose
SIGCANCEL umvu must deliver with its own siginfo (a walk of a big tree then an unmount
hung in one run of three before it did)."""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tarfile
import time

import pytest

from conftest import BASE_ENV, REPO, UMVU, compile_prog, run
from test_pyfuse3_examples import (READONLY_WORKLOAD, WORKLOAD,  # noqa: F401
                                   examples, kernel_run)  # (examples: a fixture)

PROGS = REPO / "tests" / "progs"
FSTREE = str(PROGS / "fstree.py")
EXT2WORK = str(PROGS / "ext2work.sh")
# a 20 MB file of known bytes, written and read back through the daemon
BIG = ("python3 -c \"import random, sys; "
       "sys.stdout.buffer.write(random.Random(5).randbytes(20 << 20))\"")

pytestmark = pytest.mark.skipif(os.getuid() != 0,
                                reason="the kernel FUSE side of each comparison needs root")


def sh(cmd, cwd, timeout=600):
    r = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=BASE_ENV, capture_output=True,
                       timeout=timeout)
    return r


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    top = tmp_path_factory.mktemp("fuseimg")
    src = top / "src"
    subprocess.run(["python3", FSTREE, "make", str(src), "--small"], check=True)
    os.symlink("dir0/f000.txt", src / "link")
    os.link(src / "dir1" / "f000.txt", src / "hard")
    subprocess.run(["truncate", "-s", "64M", str(top / "ext4.img")], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(top / "ext4.img")],
                   check=True)
    subprocess.run(["truncate", "-s", "96M", str(top / "empty.img")], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(top / "empty.img")], check=True)
    subprocess.run(["mksquashfs", str(src), str(top / "tree.sqfs"), "-quiet",
                    "-noappend"], check=True, capture_output=True)
    with tarfile.open(top / "tree.tar.gz", "w:gz") as tf:
        for name in sorted(os.listdir(src)):  # (archivemount shows no "./" members)
            tf.add(src / name, arcname=name)
    return top


def _native(mount_cmd: str, mnt, walk_args: str = "", after: str = "") -> bytes:
    """Mount on the host's kernel FUSE, walk, unmount."""
    os.makedirs(mnt, exist_ok=True)
    cmd = ("set -e; %s; trap 'fusermount -u %s' EXIT; %s python3 %s walk %s %s" %
           (mount_cmd, mnt, after, FSTREE, mnt, walk_args))
    r = sh(cmd, cwd=os.path.dirname(mnt))
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def _host_check(start, mnt, flags_dir):
    """Run a session (start() -> Popen) that touches mounted.flag once mounted and waits
    for checked.flag: meanwhile the host's mount table must not hold the mount."""
    mounted, checked = flags_dir / "mounted.flag", flags_dir / "checked.flag"
    p = start()
    try:
        while not mounted.exists() and p.poll() is None:
            time.sleep(0.05)
        with open("/proc/self/mounts", "rb") as f:
            host = f.read()
        checked.touch()
        out, err = p.communicate(timeout=900)
    finally:
        if p.poll() is None:
            p.kill()
    assert b" %s " % os.fsencode(mnt) not in host, host.decode()
    return p.returncode, out, err


def _guest(mount_cmd: str, mnt, walk_args: str = "", after: str = "",
           modules: str = "fuse") -> bytes:
    """The same inside umvu; the host's mount table is looked at while it is mounted."""
    os.makedirs(mnt, exist_ok=True)
    top = mnt.parent
    cmd = ("set -e; vu_insmod %s; %s; touch mounted.flag; "
           "until [ -e checked.flag ]; do sleep 0.05; done; %s python3 %s walk %s %s; "
           "vuumount %s" % (modules, mount_cmd, after, FSTREE, mnt, walk_args, mnt))
    rc, out, err = _host_check(lambda: subprocess.Popen(
        ["%s/bin/umvu" % REPO, "bash", "-c", cmd], cwd=top, env=BASE_ENV,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE), mnt, top)
    assert rc == 0, err.decode()[-3000:]
    return out


def _same(native: bytes, guest: bytes) -> None:
    assert native.count(b"\n") > 100
    assert native.decode().splitlines() == guest.decode().splitlines()


def test_fuse2fs_read_write_workload(images, tmp_path):
    """The same workload (creates, renames, unlinks, hard links, symlinks, xattrs, a
    fifo, a 3000-entry directory, a 20 MB file, fallocate and a punched hole) through
    fuse2fs on kernel FUSE and
    inside umvu: the same tree after, both images e2fsck-clean."""
    listings = {}
    for side in ("native", "umvu"):
        img = tmp_path / ("%s.img" % side)
        shutil.copy(images / "empty.img", img)
        mnt = tmp_path / side
        work = ("bash %s %s >/dev/null; %s > %s/big; cmp %s/big <(%s); "
                "fallocate -l 1048576 %s/falloc; fallocate -p -o 4096 -l 8192 %s/big;" % (
                    EXT2WORK, mnt, BIG, mnt, mnt, BIG, mnt, mnt))
        walk = "--no-times --skip lost+found"
        if side == "native":
            listings[side] = _native("fuse2fs %s %s" % (img, mnt), mnt, walk, work)
        else:
            listings[side] = _guest("fuse2fs %s %s" % (img, mnt), mnt, walk, work)
        fsck = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True)
        assert fsck.returncode == 0, fsck.stdout.decode()
        dbg = subprocess.run(["debugfs", "-R", "cat /hello", str(img)], capture_output=True)
        assert dbg.stdout == b"ciao\n"
    _same(listings["native"], listings["umvu"])


# (the daemon's command, its source in the images fixture): the same listing natively
# on kernel FUSE and inside umvu; fuse-ext2 -o ro is VUOS's first example
READ_ONLY_DAEMONS = {
    "fuse2fs": ("fuse2fs -o ro", "ext4.img"),
    "fuseext2": ("fuseext2 -o ro", "ext4.img"),
    "squashfuse": ("squashfuse", "tree.sqfs"),
    "archivemount": ("archivemount -o ro", "tree.tar.gz"),
}


@pytest.mark.parametrize("daemon", sorted(READ_ONLY_DAEMONS))
def test_read_only_daemon_same_as_kernel(images, tmp_path, daemon):
    command, source = READ_ONLY_DAEMONS[daemon]
    src = images / source
    native = _native("%s %s %s" % (command, src, tmp_path / "n"), tmp_path / "n")
    guest = _guest("%s %s %s" % (command, src, tmp_path / "g"), tmp_path / "g")
    _same(native, guest)


@pytest.mark.parametrize("who", ["root", "nobody"])
def test_fuseext2_rw_on_a_vudev_partition(tmp_path, as_user, who):
    """The second seed scenario: a disk image partitioned with sgdisk, a partition
    formatted, fuse-ext2 -o rw+ on /dev/hda1 of vudevpartx; e2fsck clean after, debugfs
    sees the file. As nobody too: the host's mount table never holds the mount, the
    host's /dev/fuse is never opened."""
    if who == "nobody":
        tmp_path = as_user.work / "partition"
        tmp_path.mkdir()
    disk = tmp_path / "disk.img"
    subprocess.run(["truncate", "-s", "40M", str(disk)], check=True)
    subprocess.run(["sgdisk", "-n", "1:2048:+30M", "-t", "1:8300", str(disk)],
                   check=True, capture_output=True)
    part = tmp_path / "part.img"
    subprocess.run(["truncate", "-s", "30M", str(part)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(part)], check=True)
    subprocess.run(["dd", "if=%s" % part, "of=%s" % disk, "bs=512", "seek=2048",
                    "conv=notrunc", "status=none"], check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cmd = ("set -e; vu_insmod vudev fuse; vumount -t vudevpartx %s /dev/hda; "
           "fuseext2 -o rw+ /dev/hda1 %s; touch mounted.flag; "
           "until [ -e checked.flag ]; do sleep 0.05; done; echo seeded > %s/seed; "
           "mkdir %s/dir; cat %s/seed; vuumount %s; vuumount /dev/hda" %
           (disk, mnt, mnt, mnt, mnt, mnt))
    if who == "nobody":
        subprocess.run(["chown", "-R", "nobody", str(tmp_path)], check=True)
        prefix = as_user.prefix
    else:
        prefix = UMVU
    watch = _dev_fuse_watch()
    rc, out, err = _host_check(lambda: subprocess.Popen(
        prefix + ["bash", "-c", cmd], cwd=tmp_path, env=BASE_ENV, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE), mnt, tmp_path)
    assert not _dev_fuse_opened(watch)
    assert rc == 0, err.decode()[-3000:]
    assert out == b"seeded\n"
    subprocess.run(["dd", "if=%s" % disk, "of=%s" % part, "bs=512", "skip=2048",
                    "count=%d" % (30 * 2048), "status=none"], check=True)
    fsck = subprocess.run(["e2fsck", "-fn", str(part)], capture_output=True)
    assert fsck.returncode == 0, fsck.stdout.decode()
    dbg = subprocess.run(["debugfs", "-R", "cat /seed", str(part)], capture_output=True)
    assert dbg.stdout == b"seeded\n"
    if who == "nobody":
        shutil.rmtree(tmp_path)


def test_bindfs(images, tmp_path):
    src = tmp_path / "src"
    subprocess.run(["python3", FSTREE, "make", str(src), "--small"], check=True)
    native = _native("bindfs %s %s" % (src, tmp_path / "n"), tmp_path / "n")
    guest = _guest("bindfs %s %s" % (src, tmp_path / "g"), tmp_path / "g")
    _same(native, guest)


def test_daemon_killed_mount_answers_enotconn(images, tmp_path):
    """SIGKILL of the daemon: every call on the mount answers ENOTCONN, as the
    kernel's; vuumount removes it; the session goes on."""
    img = tmp_path / "k.img"
    shutil.copy(images / "ext4.img", img)
    mnt = tmp_path / "m"
    mnt.mkdir()
    cmd = ("vu_insmod fuse; fuse2fs -o ro %s %s || exit 1; cat %s/link >/dev/null || exit 2; "
           "pkill -KILL -x fuse2fs; while pgrep -x fuse2fs >/dev/null; do sleep 0.05; done; "
           "ls %s; cat %s/link; stat %s; vuumount %s; echo umount=$?; ls %s | wc -l; "
           "echo alive" % (img, mnt, mnt, mnt, mnt, mnt, mnt, mnt))
    r = run("umvu", ["bash", "-c", cmd], cwd=tmp_path, timeout=120)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert err.count("Transport endpoint is not connected") == 3, err
    assert r.stdout == b"umount=0\n0\nalive\n"


def test_unmount_lets_the_daemon_exit_cleanly(images, tmp_path):
    """vuumount (and the end of the session's command) make the daemon's reads answer
    ENODEV: libfuse calls the file system's destroy and exits with no complaint (a
    libfuse that polls its fd sees POLLERR, as on the kernel)."""
    img = tmp_path / "u.img"
    shutil.copy(images / "ext4.img", img)
    mnt = tmp_path / "m"
    mnt.mkdir()
    cmd = ("vu_insmod fuse; fuse2fs -f %s %s 2>daemon.err & "
           "until [ -e %s/link ]; do sleep 0.05; done; echo new > %s/new; vuumount %s; "
           "wait $!; echo daemon=$?; fuse2fs %s %s; echo last > %s/last" %
           (img, mnt, mnt, mnt, mnt, img, mnt, mnt))
    r = run("umvu", ["bash", "-c", cmd], cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.endswith(b"\ndaemon=0\n")  # (after fuse2fs's word on the journal)
    assert b"unmount" not in (tmp_path / "daemon.err").read_bytes()
    fsck = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True)
    assert fsck.returncode == 0, fsck.stdout.decode()
    for name, data in (("new", b"new\n"), ("last", b"last\n")):
        dbg = subprocess.run(["debugfs", "-R", "cat /" + name, str(img)],
                             capture_output=True)
        assert dbg.stdout == data


def test_unprivileged_user(images, as_user):
    """As nobody: fuse2fs (libfuse 2) and squashfuse (libfuse 3) run inside the session
    (the host's /dev/fuse is root's alone here), nothing reaches the host's mount table;
    the image is clean after."""
    work = as_user.work
    img = work / "user.img"
    shutil.copy(images / "ext4.img", img)
    os.chown(img, 65534, 65534)
    mnt = work / "mnt"
    mnt.mkdir(exist_ok=True)
    os.chown(mnt, 65534, 65534)
    sq = work / "tree.sqfs"
    shutil.copy(images / "tree.sqfs", sq)
    os.chown(sq, 65534, 65534)
    sqm = work / "sqm"
    sqm.mkdir(exist_ok=True)
    os.chown(sqm, 65534, 65534)
    for flag in ("mounted.flag", "checked.flag"):
        if (work / flag).exists():
            (work / flag).unlink()
    cmd = ("set -e; vu_insmod fuse; fuse2fs -o fakeroot %s %s; echo mine > %s/mine; "
           "touch mounted.flag; "
           "until [ -e checked.flag ]; do sleep 0.05; done; "
           "python3 %s walk %s --no-times --skip lost+found | wc -l; "
           "grep -c ' %s fuse' /proc/self/mounts; vuumount %s; "
           "squashfuse %s %s; python3 %s walk %s | wc -l; vuumount %s" %
           (img, mnt, mnt, FSTREE, mnt, mnt, mnt, sq, sqm, FSTREE, sqm, sqm))
    rc, out, err = _host_check(lambda: subprocess.Popen(
        as_user.prefix + ["bash", "-c", cmd], cwd=work, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE), mnt, work)
    assert rc == 0, err.decode()[-3000:]
    lines = out.split()
    assert int(lines[0]) > 100 and lines[1] == b"1" and int(lines[2]) > 100, out
    fsck = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True)
    assert fsck.returncode == 0, fsck.stdout.decode()
    dbg = subprocess.run(["debugfs", "-R", "cat /mine", str(img)], capture_output=True)
    assert dbg.stdout == b"mine\n"


@pytest.mark.parametrize("name, who", [("hello", "root"), ("passthroughfs", "root"),
                                       ("passthroughfs", "nobody")])
def test_pyfuse3_example_as_a_program(examples, name, who, tmp_path, as_user):
    """pyfuse3's examples, unedited, run as plain programs inside umvu (pyfuse3 ->
    libfuse3 -> umvu's /dev/fuse; pyfuse3 waits for its fd with trio, so its readiness
    must be right) against the same programs on the kernel's FUSE (run by root; inside
    umvu by root, and by nobody with its own copy of the example)."""
    script = READONLY_WORKLOAD if name == "hello" else WORKLOAD
    if who == "nobody":
        # passthroughfs makes a file 0777 less its own umask whatever mode is asked, and
        # tar sets the archive's modes by chmod for root only: a user's tar would give
        # 0755 on kernel FUSE too. cp -a sets them by chmod for anyone.
        old = "tar cf - docs | (mkdir t && cd t && tar xf -)"
        assert old in script
        script = script.replace(old, "mkdir t && cp -a docs t/")
    results = {}
    for side in ("kernel", "umvu"):
        top = as_user.work / "pyfuse3" if side == "umvu" and who == "nobody" else tmp_path
        top.mkdir(exist_ok=True)
        example = examples / (name + ".py")
        if top != tmp_path:
            shutil.copy(example, top / example.name)
            example = top / example.name
        mnt = top / ("mnt-" + side)
        mnt.mkdir()
        src = top / ("src-" + side)
        src.mkdir()
        (src / "existing").write_text("was here\n")
        args = [str(src)] if name == "passthroughfs" else []
        if side == "kernel":
            r = kernel_run(example, args, mnt, script)
        else:
            full = ("vu_insmod fuse; /usr/bin/python3 %s %s %s & "
                    "until grep -q ' %s ' /proc/self/mounts; do sleep 0.05; done; "
                    "(cd %s && { %s\n}); vuumount %s; wait $!; echo daemon=$?" %
                    (example, " ".join(args), mnt, mnt, mnt, script, mnt))
            if who == "nobody":
                subprocess.run(["chown", "-R", "nobody", str(top)], check=True)
                r = as_user(["bash", "-c", full], timeout=600)
            else:
                r = run("umvu", ["bash", "-c", full], cwd="/", timeout=600)
            assert r.stdout.endswith(b"daemon=0\n"), r.stderr.decode()[-3000:]
            r.stdout = r.stdout[:-len(b"daemon=0\n")]
        results[side] = (r.returncode, r.stdout.decode())
        if args:
            results[side + "-src"] = sorted(os.listdir(src))
        if top != tmp_path:
            shutil.rmtree(top)
    assert results["umvu"] == results["kernel"]
    assert len(results["kernel"][1].splitlines()) > 5
    if name == "passthroughfs":
        assert results["umvu-src"] == results["kernel-src"]


def test_parallel_readers_and_a_daemon_killed_mid_read(images, tmp_path):
    """20 readers at once through one daemon all read what the kernel's FUSE gives;
    then a 10 GB read whose daemon is killed once it is under way ends with ENOTCONN (or EIO), as on the
    kernel, and the session goes on."""
    img = tmp_path / "p.img"
    shutil.copy(images / "ext4.img", img)
    subprocess.run(["debugfs", "-w", "-R", "write /dev/null huge", str(img)], check=True,
                   capture_output=True)
    # (10 GB of holes: a read of it is still going when the daemon is killed)
    subprocess.run(["debugfs", "-w", "-R", "sif huge size 10737418240", str(img)],
                   check=True, capture_output=True)
    files = " ".join("dir%d/f%03d.txt" % (d, i) for d in range(4) for i in (0, 2, 4, 6, 8))
    readers = ("for f in %s; do md5sum $f > ../sums.$(echo $f | tr / _) & done; wait; "
               "cat ../sums.* | sort | md5sum" % files)
    native_mnt, guest_mnt = tmp_path / "n", tmp_path / "g"
    native_mnt.mkdir()
    guest_mnt.mkdir()
    r = sh("fuse2fs -o ro %s %s && (cd %s && %s); fusermount -u %s" %
           (img, native_mnt, native_mnt, readers, native_mnt), cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    native = r.stdout
    subprocess.run("rm -f %s/sums.*" % tmp_path, shell=True, check=True)
    cmd = ("vu_insmod fuse; fuse2fs -o ro %s %s || exit 1; (cd %s && %s); "
           "{ cat %s/huge; echo cat=$? > cat.status; } | "
           # (killed once the read is under way: 1 MB through, not after a time)
           "{ head -c 1048576 > /dev/null; touch started; cat > /dev/null; } & "
           "until [ -e started ]; do sleep 0.01; done; pkill -KILL -x fuse2fs; wait; "
           "cat cat.status; echo alive" % (img, guest_mnt, guest_mnt, readers, guest_mnt))
    g = run("umvu", ["bash", "-c", cmd], cwd=tmp_path, timeout=300)
    assert g.returncode == 0, g.stderr.decode()
    lines = g.stdout.split(b"\n")
    assert lines[0] + b"\n" == native and native.count(b" ") == 2
    assert lines[1:] == [b"cat=1", b"alive", b""], g.stdout
    err = g.stderr.decode()
    assert "Transport endpoint is not connected" in err or "Input/output error" in err, err


def test_proc_mounts_line_as_the_kernels(images, tmp_path):
    """The mount's line in /proc/mounts reads as the kernel's: libfuse's fsname as the
    source, fuse.NAME, the flags libfuse gave, user_id/group_id (no fd=, no rootmode=)."""
    lines = {}
    for side in ("native", "umvu"):
        mnt = tmp_path / "m"
        mnt.mkdir(exist_ok=True)
        show = "grep ' %s ' /proc/self/mounts" % mnt
        if side == "native":
            r = sh("cd %s && fuse2fs -o ro ext4.img %s && %s; fusermount -u %s" %
                   (images, mnt, show, mnt), cwd=tmp_path)
        else:
            r = run("umvu", ["bash", "-c", "vu_insmod fuse; cd %s && fuse2fs -o ro ext4.img "
                             "%s && %s; vuumount %s" % (images, mnt, show, mnt)],
                    cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr.decode()
        lines[side] = r.stdout
    assert lines["native"].startswith(b"ext4.img %s fuse.ext4 " % os.fsencode(tmp_path / "m"))
    assert lines["umvu"] == lines["native"]


FUSERMOUNT_SCRIPT = r"""
set -e
gone() { for i in $(seq 400); do grep -q " $1 " /proc/self/mounts || return 0; sleep 0.05; done; return 1; }
# libfuse 3 with auto_unmount mounts through fusermount3, which hands /dev/fuse over
squashfuse -o auto_unmount %(img)s %(mnt)s
ls %(mnt)s | md5sum
grep " %(mnt)s " /proc/self/mounts | cut -d' ' -f3
fusermount3 -u %(mnt)s
gone %(mnt)s && echo unmounted by fusermount3 -u
# the daemon killed: auto_unmount takes the mount away (not ENOTCONN)
squashfuse -f -o auto_unmount %(img)s %(mnt)s & daemon=$!
until [ -e %(mnt)s/%(probe)s ]; do sleep 0.05; done
kill -KILL $daemon; wait $daemon || true
gone %(mnt)s && echo unmounted after the daemon died
ls -A %(mnt)s | wc -l
"""


@pytest.mark.parametrize("who", ["root", "nobody"])
def test_fusermount_and_auto_unmount(images, tmp_path, as_user, who):
    """fusermount3 inside the session: libfuse's auto_unmount goes through it (its
    /dev/fuse fd arrives over SCM_RIGHTS as the same virtual file), `fusermount3 -u`
    unmounts, and a daemon killed with SIGKILL leaves no mount behind, as on the
    kernel's FUSE with the setuid fusermount3 (the native run, as root)."""
    probe = sorted(os.listdir(images / "src"))[0]
    img = tmp_path / "t.sqfs"
    shutil.copy(images / "tree.sqfs", img)
    mnt = tmp_path / "m"
    mnt.mkdir()
    native = sh(FUSERMOUNT_SCRIPT % dict(img=img, mnt=mnt, probe=probe), cwd=tmp_path)
    assert native.returncode == 0, native.stderr.decode()
    assert b"unmounted after the daemon died\n0\n" in native.stdout
    if who == "root":
        g = run("umvu", ["bash", "-c", "vu_insmod fuse\n" + FUSERMOUNT_SCRIPT % dict(
            img=img, mnt=mnt, probe=probe)], cwd=tmp_path, timeout=120)
    else:
        work = as_user.work
        uimg, umnt = work / "t.sqfs", work / "fm"
        shutil.copy(img, uimg)
        umnt.mkdir(exist_ok=True)
        for p in (uimg, umnt):
            os.chown(p, 65534, 65534)
        g = as_user(["bash", "-c", "vu_insmod fuse\n" + FUSERMOUNT_SCRIPT % dict(
            img=uimg, mnt=umnt, probe=probe)], timeout=120)
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == native.stdout


INTERRUPT_SCRIPT = r"""
%(daemon)s %(mode)s %(mnt)s 2> daemon.log &
until [ -e %(mnt)s/f ]; do sleep 0.05; done
/usr/bin/python3 %(client)s %(mnt)s/f > client.out & client=$!
until grep -q READ daemon.log; do sleep 0.05; done
kill -%(sig)s $client
wait $client; echo status=$?
cat client.out
grep -c INTERRUPT daemon.log
%(umount)s %(mnt)s
"""


@pytest.fixture(scope="module")
def fuse_stall(tmp_path_factory):
    return compile_prog(tmp_path_factory, "fuse_stall", pkg="fuse3")


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
@pytest.mark.parametrize("daemon_mode, sig", [("", "USR1"), ("-o late", "USR1"),
                                              ("-o late", "TERM")],
                         ids=["eintr", "late-reply", "fatal"])
def test_client_signal_while_the_daemon_works(tmp_path, fuse_stall, mode, daemon_mode, sig):
    """A client's read waits for a daemon that has its READ; a signal the client
    catches (SA_RESTART) sends INTERRUPT and the read waits on for the reply, as on the
    kernel's FUSE: EINTR when the daemon answers so (not restarted), the data when it
    answers late, the handler run after; a fatal signal (SIGTERM) ends the client."""
    mnt = tmp_path / "m"
    mnt.mkdir()
    client = REPO / "tests" / "progs" / "interrupted_read.py"
    args = dict(daemon=fuse_stall, mode=daemon_mode, mnt=mnt, client=client, sig=sig)
    native = sh(INTERRUPT_SCRIPT % dict(args, umount="fusermount3 -u"), cwd=tmp_path,
                timeout=60)
    assert native.returncode == 0, native.stderr.decode()
    assert (b"status=143" if sig == "TERM" else b"handler ran True") in native.stdout
    g = run(mode, ["bash", "-c", "vu_insmod fuse\n" + INTERRUPT_SCRIPT % dict(
        args, umount="vuumount")], cwd=tmp_path, timeout=60)
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == native.stdout


POLLCOPY_SCRIPT = r"""
%(daemon)s %(mnt)s 2> daemon.log &
for i in $(seq 1200); do [ -e %(mnt)s/a ] && break; sleep 0.05; done
/usr/bin/python3 %(client)s %(mnt)s; echo status=$?
%(umount)s %(mnt)s
wait
cat daemon.log
"""


@pytest.fixture(scope="module")
def fuse_pollcopy(tmp_path_factory):
    return compile_prog(tmp_path_factory, "fuse_pollcopy", pkg="fuse3")


@pytest.mark.parametrize("who", ["umvu", "umvu-S", "nobody"])
def test_poll_and_copy_file_range(tmp_path, fuse_pollcopy, as_user, who):
    """A daemon that answers POLL and COPY_FILE_RANGE (tests/progs/fuse_pollcopy.c):
    copy_file_range between its files reaches it as the same requests as from the
    kernel (names, offsets, the length clipped at the input's end) with the kernel's
    errors and file positions; poll, select and epoll of its file show what it answers
    (not ready, then woken by its NOTIFY_POLL when another process writes "trigger",
    then not ready again once read); epoll of a FUSE file is allowed, of its directory
    EPERM. The same client on kernel FUSE (native, as root) prints the same."""
    mnt = tmp_path / "m"
    mnt.mkdir()
    client = PROGS / "pollcopy_client.py"
    args = dict(daemon=fuse_pollcopy, mnt=mnt, client=client)
    native = sh(POLLCOPY_SCRIPT % dict(args, umount="fusermount3 -u"), cwd=tmp_path,
                timeout=120)
    assert native.returncode == 0, native.stderr.decode()
    assert b"status=0\n" in native.stdout and b"poll woken [1]" in native.stdout
    assert native.stdout.count(b"COPY_FILE_RANGE") == 5
    if who == "nobody":
        work = as_user.work / "pollcopy"
        work.mkdir()
        for src in (fuse_pollcopy, client):
            shutil.copy(src, work / src.name)
        (work / "m").mkdir()
        subprocess.run(["chown", "-R", "nobody", str(work)], check=True)
        g = as_user(["bash", "-c", "cd pollcopy && vu_insmod fuse\n" + POLLCOPY_SCRIPT % dict(
            daemon="./fuse_pollcopy", mnt="m", client=client.name, umount="vuumount")],
                    timeout=120)
        shutil.rmtree(work)
    else:
        g = run(who, ["bash", "-c", "vu_insmod fuse\n" + POLLCOPY_SCRIPT % dict(
            args, umount="vuumount")], cwd=tmp_path, timeout=120)
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == native.stdout


def _dev_fuse_watch():
    """An inotify fd that hears every open of the host's /dev/fuse (IN_OPEN)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0 and libc.inotify_add_watch(fd, b"/dev/fuse", 0x20) >= 0
    return fd


def _dev_fuse_opened(fd) -> bool:
    try:
        return bool(os.read(fd, 4096))
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


AS_NOBODY = {name: spec for name, spec in READ_ONLY_DAEMONS.items()}
AS_NOBODY["bindfs"] = ("bindfs", "src")
AS_NOBODY["pyfuse3-hello"] = ("/usr/bin/python3 hello.py", None)
# a script's wait for its mount (bounded: a daemon that failed leaves it waiting)
MOUNTED = ('for i in $(seq 1200); do grep -q " $PWD/%s " /proc/self/mounts && break; '
           'sleep 0.05; done\n')


@pytest.mark.parametrize("daemon", sorted(AS_NOBODY))
def test_each_daemon_as_nobody(images, examples, tmp_path, as_user, daemon):
    """The read-only scenarios as an unprivileged user: each daemon run by nobody inside
    umvu lists the same as the same daemon on the host's kernel FUSE (run by root: the
    host's /dev/fuse is root's alone here); while the session's mount is up the host's
    mount table does not hold it, and the host's /dev/fuse is never opened (inotify).
    pyfuse3's hello gives its files its own uid and gid, and bindfs run by a user shows
    that user as every file's owner: nobody there, root here;
    the files of the tree that only root may read are left out of both walks."""
    command, source = AS_NOBODY[daemon]
    work = as_user.work / ("as-nobody-" + daemon)
    native_dir = tmp_path / "native"
    for top in (work, native_dir):
        top.mkdir()
        if daemon == "bindfs":
            subprocess.run(["cp", "-a", str(images / "src"), str(top / "src")], check=True)
        elif daemon == "pyfuse3-hello":
            shutil.copy(examples / "hello.py", top / "hello.py")
        else:
            shutil.copy(images / source, top / source)
        (top / "m").mkdir()
    arg = {"bindfs": "src", "pyfuse3-hello": ""}.get(daemon, source)
    if daemon == "pyfuse3-hello":
        walk = "cd m && { %s\n}" % READONLY_WORKLOAD.replace("ls -la", "ls -lan")
    else:
        # (not lost+found and modes/, whose files root's walk reads and nobody may not)
        walk = "python3 %s walk m --skip lost+found --skip modes" % FSTREE
    bg = " &" if daemon == "pyfuse3-hello" else ""  # (it stays in the foreground)
    try:
        native = sh("%s %s m%s\n%s(%s); fusermount3 -u m; wait" % (
            command, arg, bg, MOUNTED % "m", walk), cwd=native_dir, timeout=300)
        assert native.returncode == 0, native.stderr.decode()[-3000:]
        assert len(native.stdout.splitlines()) > (5 if daemon == "pyfuse3-hello" else 100)
        subprocess.run(["chown", "-R", "nobody", str(work)], check=True)
        guest_cmd = ("cd %s || exit 9; vu_insmod fuse || exit 9; %s %s m%s\n%s"
                     "touch mounted.flag; until [ -e checked.flag ]; do sleep 0.05; done; "
                     "(%s); vuumount m; wait" % (work, command, arg, bg, MOUNTED % "m", walk))
        watch = _dev_fuse_watch()
        rc, out, err = _host_check(lambda: subprocess.Popen(
            as_user.prefix + ["bash", "-c", guest_cmd], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE), work / "m", work)
        assert not _dev_fuse_opened(watch)
        assert rc == 0, err.decode()[-3000:]
        if daemon == "pyfuse3-hello":
            out = out.replace(b" 65534 65534 ", b" 0 0 ")
        expected = native.stdout
        if daemon == "bindfs":  # (run by a user, it shows that user as every owner)
            owner = re.compile(rb"^('.*' [0-7]+) \d+:", re.M)
            out, expected = (owner.sub(rb"\1 OWNER:", o) for o in (out, expected))
        assert out == expected
    finally:
        subprocess.run(["rm", "-rf", str(work)])
