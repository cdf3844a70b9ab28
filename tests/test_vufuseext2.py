"""vufuseext2: ext2/3/4 images through libext2fs inside umvu (issue: vufuseext2)."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, differential, run
from test_unreal_differential import CASES

PROGS = REPO / "tests" / "progs"
FSTREE = str(PROGS / "fstree.py")


def mkfs(image, fstype="ext4", size="64M", src=None, extra=()):
    argv = ["mke2fs", "-q", "-F", "-t", fstype, "-b", "4096", *extra]
    if src:
        argv += ["-d", str(src)]
    subprocess.run(argv + [str(image), size], check=True, capture_output=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsck_clean(image):
    r = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def in_umvu(script, mode="umvu", **kw):
    return run(mode, ["bash", "-c", "vu_insmod vufuse || exit 99\n" + script], **kw)


def seconds(lines):
    """mke2fs -d keeps whole seconds of the source's times."""
    return [re.sub(r"mtime=(-?\d+)", lambda m: "mtime=%d" % (int(m.group(1)) // 10**9), ln)
            for ln in lines]


@pytest.fixture(scope="session")
def source_tree(tmp_path_factory):
    src = tmp_path_factory.mktemp("ext2src") / "src"
    subprocess.run(["python3", FSTREE, "make", str(src)], check=True)
    listing = subprocess.run(["python3", FSTREE, "walk", str(src)], check=True,
                             capture_output=True).stdout.decode().splitlines()
    assert len(listing) > 10000  # several hundred files, a 10k-entry directory
    return src, listing


@pytest.mark.parametrize("fstype,extra", [("ext4", ()), ("ext3", ()), ("ext2", ()),
                                          ("ext4", ("-O", "inline_data,^has_journal")),
                                          ("ext4", ("-I", "128", "-O", "^metadata_csum"))],
                         ids=["ext4", "ext3", "ext2", "ext4-inline-data", "ext4-small-inodes"])
def test_image_reads_as_its_source(source_tree, fstype, extra, tmp_path):
    src, native = source_tree
    image = tmp_path / "img"
    mkfs(image, fstype, "160M", src, extra)
    before = sha256(image)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = in_umvu("vumount -t vufuseext2 -o ro %s %s && python3 %s walk %s --skip lost+found"
                % (image, mnt, FSTREE, mnt))
    assert r.returncode == 0, r.stderr.decode()
    got = r.stdout.decode().splitlines()
    assert len(got) == len(native)
    if "inline_data" in " ".join(extra):
        # mke2fs -d with inline_data drops the trailing hole of 'sparse' (its i_size
        # ends at the last data): there, what debugfs reads is the truth
        ours = [ln for ln in got if ln.startswith("'sparse' ")][0]
        stat_out = subprocess.run(["debugfs", "-R", "stat /sparse", str(image)],
                                  capture_output=True, text=True).stdout
        assert "size=%s " % re.search(r"Size: (\d+)", stat_out).group(1) in ours
        got = [ln for ln in got if not ln.startswith("'sparse' ")]
        native = [ln for ln in native if not ln.startswith("'sparse' ")]
    assert seconds(got) == seconds(native)
    assert sha256(image) == before  # a read-only mount writes nothing


def test_nanosecond_times_and_devices_written_read_back(tmp_path):
    image = tmp_path / "img"
    mkfs(image)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = f"""
        vumount -t vufuseext2 -o rw+ {image} {mnt} &&
        touch -d '2001-02-03 04:05:06.123456789' {mnt}/f && mkdir {mnt}/d &&
        touch -d '1960-01-01 00:00:00.5' {mnt}/d && mknod {mnt}/c c 1 3 &&
        mknod {mnt}/b b 259 70000 && mkfifo {mnt}/p && vuumount {mnt} &&
        vumount -t vufuseext2 {image} {mnt} && cd {mnt} &&
        stat -c '%n %y' f d && stat -c '%n %F %t:%T' c b p
    """
    r = in_umvu(script)
    assert r.stdout.decode().splitlines() == [
        "f 2001-02-03 04:05:06.123456789 +0000",
        "d 1960-01-01 00:00:00.500000000 +0000",
        "c character special file 1:3",
        "b block special file 103:11170",
        "p fifo 0:0"], r.stderr.decode()
    assert fsck_clean(image)[0] == 0
    # debugfs reads the same nanoseconds: 123456789 << 2, epoch bits 0
    out = subprocess.run(["debugfs", "-R", "stat /f", str(image)], capture_output=True,
                         text=True).stdout
    assert re.search(r"mtime: 0x[0-9a-f]+:1d6f3454", out), out


def test_rw_workload_matches_fuse2fs_and_is_fsck_clean(tmp_path):
    ours, theirs = tmp_path / "ours.img", tmp_path / "theirs.img"
    mkfs(ours, size="64M")
    shutil.copy(ours, theirs)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    work = PROGS / "ext2work.sh"
    r = in_umvu(f"vumount -t vufuseext2 -o rw+ {ours} {mnt} && bash {work} {mnt} && "
                f"python3 {FSTREE} walk {mnt} --no-times")
    assert r.returncode == 0, r.stderr.decode()
    listing = r.stdout.decode().splitlines()
    assert listing[0] == "done" and len(listing) > 2500
    code, text = fsck_clean(ours)
    assert code == 0, text
    debugfs = subprocess.run(["debugfs", "-R", "cat /hello", str(ours)], capture_output=True)
    assert debugfs.stdout == b"ciao\n"
    # the same workload on the kernel, through fuse2fs
    kmnt = tmp_path / "kmnt"
    kmnt.mkdir()
    subprocess.run(["fuse2fs", "-o", "fakeroot", str(theirs), str(kmnt)], check=True,
                   capture_output=True)
    try:
        subprocess.run(["bash", str(work), str(kmnt)], check=True, capture_output=True)
        kernel = subprocess.run(["python3", FSTREE, "walk", str(kmnt), "--no-times"],
                                capture_output=True, check=True).stdout.decode()
    finally:
        subprocess.run(["umount", str(kmnt)], check=True)
    assert listing[1:] == kernel.splitlines()
    assert fsck_clean(theirs)[0] == 0
    # and both images use the same space
    def usage(img):
        return re.findall(r"\d+/\d+ files.*blocks", fsck_clean(img)[1])
    assert usage(ours) == usage(theirs)


@pytest.mark.parametrize("cmd", CASES, ids=range(len(CASES)))
def test_differential_inside_ext4_image(cmd, tmp_path):
    image = tmp_path / "img"

    def wrap(work, c):
        mkfs(image, size="256M", extra=("-O", "^has_journal"))
        return ("vu_insmod vufuse && vumount -t vufuseext2 -o rw+ %s %s && cd %s && "
                "rmdir lost+found && { %s\n}" % (image, work, work, c))
    results = differential(cmd, tmp_path, "umvu", wrap)
    assert results["umvu"] == results["native"], cmd
    code, text = fsck_clean(image)
    assert code == 0, text


# ---------------------------------------------------------------- hypothesis
NAMES = st.sampled_from(["a", "b", "d1/a", "d1/b", "d2", "d1/d3", "d1/d3/x"])
OPS = st.one_of(
    st.tuples(st.just("write"), NAMES, st.integers(0, 70000), st.integers(0, 9000),
              st.integers(65, 90), st.booleans()),
    st.tuples(st.just("read"), NAMES),
    st.tuples(st.just("truncate"), NAMES, st.integers(0, 100000)),
    st.tuples(st.sampled_from(["mkdir", "rmdir", "unlink", "listdir", "stat"]), NAMES),
    st.tuples(st.sampled_from(["rename", "link"]), NAMES, NAMES),
    st.tuples(st.just("symlink"), NAMES, NAMES),
    st.tuples(st.just("chmod"), NAMES, st.sampled_from([0o600, 0o755, 0o4711])),
    st.tuples(st.just("setxattr"), NAMES, st.sampled_from(["k1", "k2"]),
              st.text("xyz", max_size=40)),
    st.tuples(st.just("removexattr"), NAMES, st.sampled_from(["k1", "k2"])),
)


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=5, max_size=40))
def test_random_operations_match_a_host_directory(ops, tmp_path):
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    payload = json.dumps([list(op) for op in ops]).encode()
    host = base / "host"
    host.mkdir()
    native = run("native", ["python3", str(PROGS / "fsops.py"), str(host)], input=payload)
    image, mnt = base / "img", base / "mnt"
    mkfs(image, size="32M")
    mnt.mkdir()
    guest = in_umvu(f"vumount -t vufuseext2 -o rw+ {image} {mnt} && "
                    f"python3 {PROGS / 'fsops.py'} {mnt}", input=payload)
    assert guest.returncode == native.returncode == 0, guest.stderr.decode()
    assert guest.stdout.decode().splitlines() == native.stdout.decode().splitlines()
    code, text = fsck_clean(image)
    assert code == 0, text


# ---------------------------------------------------------------- bad images
@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    top = tmp_path_factory.mktemp("corrupt")
    src = top / "src"
    subprocess.run(["python3", FSTREE, "make", str(src), "--small"], check=True)
    image = top / "img"
    mkfs(image, "ext4", "48M", src, ("-N", "4096"))
    dump = subprocess.run(["dumpe2fs", str(image)], capture_output=True, text=True).stdout
    table = int(re.search(r"Inode table at (\d+)", dump).group(1))
    dblocks = subprocess.run(["debugfs", "-R", "blocks /many", str(image)],
                             capture_output=True, text=True).stdout.split()
    regions = {
        "superblock": (1024, 1024),
        "group-descriptors": (4096, 4096),
        "inode-table": (table * 4096, 64 * 4096),
        "directory-blocks": (int(dblocks[0]) * 4096, len(dblocks) * 4096),
    }
    return image, regions


def _damage(image, out, offset, length, seed, flips=24):
    import random
    shutil.copy(image, out)
    rnd = random.Random(seed)
    with open(out, "r+b") as f:
        for _ in range(flips):
            pos = offset + rnd.randrange(length)
            f.seek(pos)
            byte = f.read(1)[0]
            f.seek(pos)
            f.write(bytes([byte ^ (1 << rnd.randrange(8))]))


EXPLORE = ("find {m} -xdev > /dev/null 2>&1; ls -lR {m} > /dev/null 2>&1; "
           "cat {m}/big.bin {m}/dir*/*.txt > /dev/null 2>&1; "
           "python3 {fstree} walk {m} > /dev/null 2>&1")


@pytest.mark.parametrize("region", ["superblock", "group-descriptors", "inode-table",
                                    "directory-blocks"])
@pytest.mark.parametrize("seed", range(3))
def test_corrupt_image_never_crashes_and_ro_writes_nothing(small_image, region, seed,
                                                          tmp_path):
    image, regions = small_image
    bad = tmp_path / "bad.img"
    _damage(image, bad, *regions[region], seed=seed * 31 + len(region))
    before = sha256(bad)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = ("if vumount -t vufuseext2 -o ro %s %s; then %s; echo mounted; "
              "else echo refused; fi; echo alive" % (bad, mnt, EXPLORE.format(
                  m=mnt, fstree=FSTREE)))
    r = in_umvu(script, timeout=300)
    out = r.stdout.decode().split()
    assert r.returncode == 0 and out[-1] == "alive", (r.returncode, r.stderr.decode())
    if out[0] == "refused":
        assert b"vufuseext2" in r.stderr  # a clear error names what failed
    assert sha256(bad) == before
    # read-write: may refuse or change the image, but never takes the session down
    shutil.copy(image, tmp_path / "rw.img")
    _damage(image, tmp_path / "rw.img", *regions[region], seed=seed)
    script = ("if vumount -t vufuseext2 -o rw+ %s %s; then %s; touch %s/new 2>/dev/null; "
              "rm -rf %s/dir1 2>/dev/null; vuumount %s; fi; echo alive"
              % (tmp_path / "rw.img", mnt, EXPLORE.format(m=mnt, fstree=FSTREE), mnt, mnt,
                 mnt))
    r = in_umvu(script, timeout=300)
    assert r.returncode == 0 and r.stdout.split()[-1] == b"alive", r.stderr.decode()


@pytest.mark.parametrize("size", [0, 1000, 4096 * 3, 6 << 20])
def test_truncated_image(small_image, size, tmp_path):
    image, _ = small_image
    bad = tmp_path / "short.img"
    with open(image, "rb") as f, open(bad, "wb") as g:
        g.write(f.read(size))
    before = sha256(bad)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = in_umvu("if vumount -t vufuseext2 %s %s; then %s; fi; echo alive"
                % (bad, mnt, EXPLORE.format(m=mnt, fstree=FSTREE)), timeout=300)
    assert r.returncode == 0 and r.stdout.split()[-1] == b"alive", r.stderr.decode()
    assert sha256(bad) == before


def test_refusals_are_clear_and_write_nothing(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cases = {}
    img = tmp_path / "recovery.img"
    mkfs(img)
    subprocess.run(["debugfs", "-w", "-R", "feature needs_recovery", str(img)],
                   check=True, capture_output=True)
    cases[img] = "journal needs recovery"
    img = tmp_path / "future.img"
    mkfs(img)
    subprocess.run(["debugfs", "-w", "-R", "feature FEATURE_I31", str(img)], check=True,
                   capture_output=True)
    cases[img] = "cannot mount as ext2/3/4"
    img = tmp_path / "notext.img"
    img.write_bytes(b"\0" * (1 << 20))
    cases[img] = "cannot mount as ext2/3/4"
    for img, words in cases.items():
        before = sha256(img)
        for opts in ("ro", "rw+"):
            r = in_umvu("vumount -t vufuseext2 -o %s %s %s; echo rc=$?; ls %s"
                        % (opts, img, mnt, mnt))
            assert r.stdout == b"rc=1\n", (img, opts, r.stdout)
            assert words in r.stderr.decode(), (img, r.stderr)
        assert sha256(img) == before
    r = in_umvu("vumount -t vufuseext2 -o bogus %s %s; echo rc=$?" % (img, mnt))
    assert r.stdout == b"rc=1\n" and b"bogus" in r.stderr
    r = in_umvu("vumount -t vufuseext2 %s/missing.img %s; echo rc=$?" % (tmp_path, mnt))
    assert r.stdout == b"rc=1\n" and b"No such file" in r.stderr


def test_unlinked_open_file_freed_at_last_close_and_at_umount(tmp_path):
    image = tmp_path / "img"
    mkfs(image, size="32M")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = f"""
        vumount -t vufuseext2 -o rw+ {image} {mnt} && cd {mnt} &&
        head -c 4000000 /dev/zero > held && head -c 4000000 /dev/zero > kept &&
        exec 3<held 4<kept && rm held kept && df --output=used . | tail -1 &&
        exec 3<&- && df --output=used . | tail -1 && cat <&4 | wc -c
    """
    r = in_umvu(script)
    used = r.stdout.decode().split()
    assert len(used) == 3 and int(used[0]) - int(used[1]) >= 3900, (used, r.stderr)
    assert used[2] == "4000000"
    code, text = fsck_clean(image)  # "kept" was still open at the end: freed at umount
    assert code == 0, text


def test_readonly_user_mount_as_nobody(as_user):
    image = as_user.work / "user.img"
    src = as_user.work / "usersrc"
    src.mkdir()
    (src / "note").write_text("from an image\n")
    (src / "pub").mkdir()
    os.chown(src / "pub", 65534, 65534)
    mkfs(image, size="8M", src=src)
    os.chmod(image, 0o644)
    r = as_user(["bash", "-c", "vu_insmod vufuse && mkdir -p m && "
                 "vumount -t vufuseext2 user.img m && cat m/note && id -u && "
                 "touch m/x; vuumount m"])
    assert r.stdout.decode().splitlines()[0] == "from an image"
    assert b"Read-only file system" in r.stderr
    os.chmod(image, 0o666)
    # an unprivileged user owns the image's bytes: permission checks as for root
    # (fuse2fs's fakeroot) unless -o nofakeroot asks for the kernel's checks
    r = as_user(["bash", "-c", "vu_insmod vufuse && mkdir -p m && "
                 "vumount -t vufuseext2 -o rw+,nofakeroot user.img m && "
                 "echo new > m/pub/new && { touch m/denied 2>/dev/null || echo denied; } && "
                 "vuumount m && vumount -t vufuseext2 -o rw+ user.img m && touch m/allowed && "
                 "vuumount m && echo ok"])
    assert r.stdout == b"denied\nok\n", r.stderr.decode()
    assert subprocess.run(["debugfs", "-R", "cat /pub/new", str(image)],
                          capture_output=True).stdout == b"new\n"
    assert fsck_clean(image)[0] == 0


def test_example_script_runs(tmp_path):
    r = subprocess.run(["bash", str(REPO / "examples" / "vufuseext2.sh")], cwd=tmp_path,
                       capture_output=True, env=dict(os.environ,
                                                     PATH="%s:%s" % (REPO / "bin",
                                                                     os.environ["PATH"])),
                       timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    assert b"e2fsck: clean" in r.stdout and b"copied tree matches" in r.stdout


ACL_SCRIPT = r'''
import os, stat
def acl(*entries):
    return (2).to_bytes(4, "little") + b"".join(
        t.to_bytes(2, "little") + p.to_bytes(2, "little") + i.to_bytes(4, "little")
        for t, p, i in entries)
U = 0xFFFFFFFF
open("f", "w").close(); os.chmod("f", 0o640)
os.setxattr("f", "system.posix_acl_access", acl((1, 6, U), (4, 4, U), (0x20, 0, U)))
print("minimal", oct(os.stat("f").st_mode), "system.posix_acl_access" in os.listxattr("f"))
os.setxattr("f", "system.posix_acl_access",
            acl((1, 7, U), (2, 6, 1234), (4, 4, U), (0x10, 6, U), (0x20, 1, U)))
print("extended", oct(os.stat("f").st_mode), os.getxattr("f", "system.posix_acl_access").hex())
os.chmod("f", 0o700)
print("chmod", oct(os.stat("f").st_mode), os.getxattr("f", "system.posix_acl_access").hex())
for bad in (b"", b"\x02\0\0\0", acl((1, 6, U), (4, 4, U)), acl((1, 6, U), (2, 6, 5), (4, 4, U), (0x20, 0, U))):
    try:
        os.setxattr("f", "system.posix_acl_access", bad); print("accepted", bad.hex())
    except OSError as e:
        print("refused", e.errno)
try:
    os.setxattr("f", "system.posix_acl_default", acl((1, 7, U), (4, 5, U), (0x20, 5, U)))
except OSError as e:
    print("default on a file", e.errno)
os.mkdir("d")
os.setxattr("d", "system.posix_acl_default", acl((1, 7, U), (4, 5, U), (0x20, 5, U)))
print("default", os.getxattr("d", "system.posix_acl_default").hex())
'''


def test_posix_acls_behave_as_on_ext4(tmp_path):
    image = tmp_path / "img"

    def wrap(work, c):
        mkfs(image, size="32M")
        return ("vu_insmod vufuse && vumount -t vufuseext2 -o rw+ %s %s && cd %s && "
                "rmdir lost+found && { %s\n}" % (image, work, work, c))
    results = differential("python3 -c '%s'" % ACL_SCRIPT.replace("'", "'\\''"),
                           tmp_path, "umvu", wrap)
    assert results["native"][1].count(b"\n") == 9
    assert results["umvu"] == results["native"]
    assert fsck_clean(image)[0] == 0


def test_demo_script_mounts_an_ext2_image(tmp_path):
    r = subprocess.run(["sh", str(REPO / "examples" / "demo.sh")], cwd=tmp_path,
                       capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert "hello from ext2" in out and "lost+found" in out and "exits 137" in out


def test_whole_file_reads_follow_the_block_map(tmp_path):
    """A read-only mount reads whole files run by run of their block map: punched holes
    (a two-level extent tree), an uninitialized extent inside i_size (zeros), indirect
    blocks of ext2, and a file system at an offset in a partitioned disk; what debugfs
    dumps is the truth."""
    rnd = os.urandom
    (tmp_path / "big").write_bytes(rnd(3_000_000))
    (tmp_path / "small").write_bytes(rnd(5000))
    names = ["big", "un", "small"]
    for fstype in ("ext4", "ext2"):
        fs = tmp_path / ("%s.img" % fstype)
        subprocess.run(["mke2fs", "-q", "-F", "-t", fstype, "-b", "1024", str(fs), "16M"],
                       check=True, capture_output=True)
        cmds = ["write %s big" % (tmp_path / "big"), "write %s un" % (tmp_path / "small"),
                "write %s small" % (tmp_path / "small")]
        if fstype == "ext4":
            cmds += ["punch /big %d %d" % (b, b + 5) for b in range(10, 300, 20)]
            cmds += ["fallocate /un 10 50", "sif /un size 60000"]
        subprocess.run(["debugfs", "-w", "-f", "-", str(fs)], input="\n".join(cmds).encode(),
                       check=True, capture_output=True)
        if fstype == "ext4":
            ex = subprocess.run(["debugfs", "-R", "ex /big", str(fs)], capture_output=True,
                                text=True).stdout
            assert re.search(r"^ 1/ 1 ", ex, re.M), ex  # an index level
            ex = subprocess.run(["debugfs", "-R", "ex /un", str(fs)], capture_output=True,
                                text=True).stdout
            assert "Uninit" in ex, ex
        truth = {}
        for name in names:
            out = tmp_path / ("%s.%s" % (fstype, name))
            subprocess.run(["debugfs", "-R", "dump /%s %s" % (name, out), str(fs)],
                           check=True, capture_output=True)
            truth[name] = hashlib.md5(out.read_bytes()).hexdigest()
        disk = tmp_path / ("%s-disk.img" % fstype)
        with open(disk, "wb") as f:
            f.truncate(32 << 20)
        subprocess.run(["sgdisk", "-n", "1:2048:+16M", str(disk)], check=True,
                       capture_output=True)
        with open(disk, "r+b") as f:
            f.seek(2048 * 512)
            f.write(fs.read_bytes())
        mnt = tmp_path / "mnt"
        mnt.mkdir(exist_ok=True)
        for source, prefix in ((fs, ""), ("/dev/hda1", "vu_insmod vudev && vumount -t "
                                          "vudevpartx %s /dev/hda && " % disk)):
            r = in_umvu("%svumount -t vufuseext2 -o ro %s %s && cd %s && md5sum %s"
                        % (prefix, source, mnt, mnt, " ".join(names)))
            assert r.returncode == 0, r.stderr.decode()
            got = dict(ln.split()[::-1] for ln in r.stdout.decode().splitlines())
            assert got == truth, (fstype, source)


SYMLINKS = ("import os\nfor n in (1022, 1023, 1024, 2048, 4095):\n"
            "    try:\n        os.symlink('a' * n, 'l%d' % n)\n"
            "        print(n, len(os.readlink('l%d' % n)))\n"
            "    except OSError as e:\n        print(n, e.strerror)\n")


def test_symlink_lengths_of_a_1k_block_image(tmp_path):
    """A symlink's target and its NUL fit in one block, as ext4_symlink asks: on a
    1 KiB-block image a 1024-byte target is ENAMETOOLONG (the kernel's own ext4 on a
    loop device of the same image, as root, answers the same)."""
    native_img, img = tmp_path / "k.img", tmp_path / "u.img"
    for p in (native_img, img):
        mkfs(p, extra=("-b", "1024"))
    k, m = tmp_path / "k", tmp_path / "m"
    k.mkdir()
    m.mkdir()
    r = subprocess.run(["mount", "-o", "loop", str(native_img), str(k)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    try:
        native = subprocess.run(["/usr/bin/python3", "-c", SYMLINKS], cwd=k,
                                capture_output=True)
    finally:
        subprocess.run(["umount", str(k)], check=True)
    assert b"1023 1023\n1024 File name too long\n" in native.stdout
    g = run("umvu", ["bash", "-c", "vu_insmod vufuse && vumount -t vufuseext2 -o rw+ %s %s "
                     "&& cd %s && /usr/bin/python3 -c \"$0\"" % (img, m, m), SYMLINKS])
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == native.stdout
    assert subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True).returncode == 0
