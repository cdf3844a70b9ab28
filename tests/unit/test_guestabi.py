"""umvu/core/guestabi.py: struct stat, statx, statfs and linux_dirent64 as the x86_64
kernel lays them out, checked field by field and against the kernel's own bytes."""
import ctypes
import os
import stat
import struct
from types import SimpleNamespace

import pytest

from umvu.core import guestabi

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_FSTAT, SYS_STATFS, SYS_GETDENTS64, SYS_STATX = 5, 137, 217, 332
AT_FDCWD, STATX_ALL = -100, 0xFFF

STAT = struct.Struct("<QQQIIIiQqqqqQqQqQ3q")
STAT_FIELDS = ("dev", "ino", "nlink", "mode", "uid", "gid", "pad0", "rdev", "size",
               "blksize", "blocks", "atime", "atime_nsec", "mtime", "mtime_nsec", "ctime",
               "ctime_nsec", "r0", "r1", "r2")


def kernel(nr, *args, size):
    buf = ctypes.create_string_buffer(size)  # zeroed
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a
                                            for a in args], buf)
    assert ret >= 0, os.strerror(ctypes.get_errno())
    return buf.raw, ret


@pytest.fixture
def some_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 5000)
    os.utime(p, ns=(1_000_000_123_456_789, 1_600_000_000_987_654_321))
    return p


def test_stat_is_144_bytes_field_by_field(some_file):
    st = os.stat(some_file)
    raw = guestabi.encode_stat(st)
    assert len(raw) == 144
    f = dict(zip(STAT_FIELDS, STAT.unpack(raw)))
    assert (f["dev"], f["ino"], f["nlink"], f["mode"]) == (st.st_dev, st.st_ino,
                                                          st.st_nlink, st.st_mode)
    assert (f["uid"], f["gid"], f["rdev"], f["size"]) == (st.st_uid, st.st_gid, st.st_rdev,
                                                         5000)
    assert (f["blksize"], f["blocks"]) == (st.st_blksize, st.st_blocks)
    assert (f["atime"], f["atime_nsec"]) == (1_000_000, 123_456_789)
    assert (f["mtime"], f["mtime_nsec"]) == (1_600_000_000, 987_654_321)
    assert (f["ctime"], f["ctime_nsec"]) == divmod(st.st_ctime_ns, 10**9)
    assert (f["pad0"], f["r0"], f["r1"], f["r2"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("kind", ["file", "dir", "symlink", "fifo"])
def test_stat_is_the_kernels_own_struct(tmp_path, kind):
    p = tmp_path / kind
    if kind == "file":
        p.write_text("data")
    elif kind == "dir":
        p.mkdir()
    elif kind == "symlink":
        p.symlink_to("nowhere")
    else:
        os.mkfifo(p)
    fd = os.open(p, os.O_PATH | os.O_NOFOLLOW)
    try:
        want, _ = kernel(SYS_FSTAT, fd, size=144)
        got = guestabi.encode_stat(os.fstat(fd))
    finally:
        os.close(fd)
    assert got == want


def test_stat_of_a_minimal_object_uses_the_defaults():
    st = SimpleNamespace(st_ino=7, st_nlink=1, st_mode=stat.S_IFREG | 0o600, st_uid=1,
                         st_gid=2, st_size=3, st_atime=1.5, st_mtime=-0.25, st_ctime=2,
                         st_dev=None)
    f = dict(zip(STAT_FIELDS, STAT.unpack(guestabi.encode_stat(st))))
    assert (f["dev"], f["rdev"], f["blksize"], f["blocks"]) == (0, 0, 4096, 0)
    assert (f["ino"], f["nlink"], f["mode"], f["uid"], f["gid"], f["size"]) == (
        7, 1, stat.S_IFREG | 0o600, 1, 2, 3)
    assert (f["atime"], f["atime_nsec"]) == (1, 500_000_000)
    assert (f["mtime"], f["mtime_nsec"]) == (-1, 750_000_000)  # nsec always in [0, 1e9)
    assert (f["ctime"], f["ctime_nsec"]) == (2, 0)


def test_stat_times_prefer_the_nanosecond_fields():
    st = SimpleNamespace(st_ino=1, st_nlink=1, st_mode=0o100644, st_uid=0, st_gid=0,
                         st_size=0, st_atime=0.0, st_mtime=0.0, st_ctime=0.0,
                         st_atime_ns=-1, st_mtime_ns=10**18 + 1, st_ctime_ns=999_999_999)
    f = dict(zip(STAT_FIELDS, STAT.unpack(guestabi.encode_stat(st))))
    assert (f["atime"], f["atime_nsec"]) == (-1, 999_999_999)
    assert (f["mtime"], f["mtime_nsec"]) == (10**9, 1)
    assert (f["ctime"], f["ctime_nsec"]) == (0, 999_999_999)


STATX_HEAD = struct.Struct("<IIQIIIHHQQQQ")  # up to stx_attributes_mask: 0x40 bytes
TS = struct.Struct("<qIi")


def parse_statx(raw):
    (mask, blksize, attributes, nlink, uid, gid, mode, _spare, ino, size, blocks,
     attributes_mask) = STATX_HEAD.unpack_from(raw, 0)
    times = {name: TS.unpack_from(raw, 0x40 + 16 * i)[:2]
             for i, name in enumerate(("atime", "btime", "ctime", "mtime"))}
    rdev_major, rdev_minor, dev_major, dev_minor = struct.unpack_from("<IIII", raw, 0x80)
    return dict(mask=mask, blksize=blksize, attributes=attributes, nlink=nlink, uid=uid,
                gid=gid, mode=mode, ino=ino, size=size, blocks=blocks,
                attributes_mask=attributes_mask, rdev=(rdev_major, rdev_minor),
                dev=(dev_major, dev_minor), **times)


def test_statx_is_256_bytes_with_the_basic_stats(some_file):
    st = os.stat(some_file)
    raw = guestabi.encode_statx(st, guestabi.STATX_BASIC_STATS)
    assert len(raw) == 256
    x = parse_statx(raw)
    assert x["mask"] == guestabi.STATX_BASIC_STATS == 0x7FF
    assert (x["mode"], x["ino"], x["nlink"], x["uid"], x["gid"]) == (
        st.st_mode, st.st_ino, st.st_nlink, st.st_uid, st.st_gid)
    assert (x["size"], x["blocks"], x["blksize"]) == (5000, st.st_blocks, st.st_blksize)
    assert x["atime"] == (1_000_000, 123_456_789)
    assert x["mtime"] == (1_600_000_000, 987_654_321)
    assert x["ctime"] == divmod(st.st_ctime_ns, 10**9)
    assert x["btime"] == (0, 0)  # not in the mask
    assert x["dev"] == (os.major(st.st_dev), os.minor(st.st_dev)) and x["rdev"] == (0, 0)
    assert raw[0x98:] == bytes(256 - 0x98)


def test_statx_agrees_with_the_kernels_statx(some_file):
    path = os.fsencode(some_file)
    want = parse_statx(kernel(SYS_STATX, AT_FDCWD, path, 0, STATX_ALL, size=256)[0])
    got = parse_statx(guestabi.encode_statx(os.stat(path), STATX_ALL))
    assert want["mask"] & guestabi.STATX_BASIC_STATS == guestabi.STATX_BASIC_STATS
    for field in ("blksize", "nlink", "uid", "gid", "mode", "ino", "size", "blocks",
                  "atime", "ctime", "mtime", "rdev", "dev"):
        assert got[field] == want[field], field


def test_stat_of_a_device_gives_its_number():
    st = SimpleNamespace(st_ino=1, st_nlink=1, st_mode=stat.S_IFCHR | 0o666, st_uid=0,
                         st_gid=0, st_size=0, st_atime=0, st_mtime=0, st_ctime=0,
                         st_rdev=os.makedev(1, 3), st_dev=os.makedev(0, 5))
    f = dict(zip(STAT_FIELDS, STAT.unpack(guestabi.encode_stat(st))))
    assert (f["rdev"], f["dev"]) == (os.makedev(1, 3), os.makedev(0, 5))


def test_statx_of_a_device_gives_its_numbers():
    st = os.stat("/dev/null")
    x = parse_statx(guestabi.encode_statx(st, guestabi.STATX_BASIC_STATS))
    assert x["rdev"] == (1, 3) and stat.S_ISCHR(x["mode"])


@pytest.mark.parametrize("mask", [0, 0x1, guestabi.STATX_BASIC_STATS, STATX_ALL])
def test_statx_reports_the_basic_stats_whatever_was_asked(some_file, mask):
    # as the kernel does: stx_mask says what is filled in, which may be more than asked
    raw = guestabi.encode_statx(os.stat(some_file), mask)
    assert parse_statx(raw)["mask"] == guestabi.STATX_BASIC_STATS
    assert raw == guestabi.encode_statx(os.stat(some_file), guestabi.STATX_BASIC_STATS)


STATFS = struct.Struct("<qqQQQQQiiqqq4q")
STATFS_FIELDS = ("type", "bsize", "blocks", "bfree", "bavail", "files", "ffree", "fsid0",
                 "fsid1", "namelen", "frsize", "flags", "s0", "s1", "s2", "s3")


def test_statfs_is_120_bytes_field_by_field():
    sv = SimpleNamespace(f_type=0xEF53, f_bsize=4096, f_blocks=1000, f_bfree=400,
                         f_bavail=300, f_files=50, f_ffree=20, f_namemax=255,
                         f_frsize=1024, f_flag=1)
    raw = guestabi.encode_statfs(sv)
    assert len(raw) == 120
    f = dict(zip(STATFS_FIELDS, STATFS.unpack(raw)))
    assert f == dict(type=0xEF53, bsize=4096, blocks=1000, bfree=400, bavail=300, files=50,
                     ffree=20, fsid0=0, fsid1=0, namelen=255, frsize=1024, flags=1,
                     s0=0, s1=0, s2=0, s3=0)


def test_statfs_without_a_type_says_fuse():
    sv = SimpleNamespace(f_bsize=512, f_blocks=1, f_bfree=1, f_bavail=1, f_files=1,
                         f_ffree=1, f_namemax=100, f_frsize=512)
    f = dict(zip(STATFS_FIELDS, STATFS.unpack(guestabi.encode_statfs(sv))))
    assert f["type"] == 0x65735546 and f["flags"] == 0 and f["namelen"] == 100


def test_statfs_of_statvfs_agrees_with_the_kernels_statfs(tmp_path):
    want = dict(zip(STATFS_FIELDS, STATFS.unpack(
        kernel(SYS_STATFS, os.fsencode(tmp_path), size=120)[0])))
    got = dict(zip(STATFS_FIELDS, STATFS.unpack(guestabi.encode_statfs(os.statvfs(tmp_path)))))
    for field in ("bsize", "blocks", "files", "namelen", "frsize"):  # (the stable ones)
        assert got[field] == want[field], field


DIRENT_HDR = struct.Struct("<QqHB")


@pytest.mark.parametrize("name", [b"a", b"ab", b"abcd", b"abcde", b"x" * 12, b"y" * 13,
                                  b"z" * 255, b"."])
def test_dirent_records_are_aligned_and_nul_terminated(name):
    rec = guestabi.encode_dirent(name, 42, 8, 77)
    ino, off, reclen, d_type = DIRENT_HDR.unpack_from(rec)
    assert (ino, off, d_type, reclen) == (42, 77, 8, len(rec))
    assert reclen % 8 == 0
    assert 19 + len(name) + 1 <= reclen < 19 + len(name) + 1 + 8  # the smallest that fits
    assert rec[19:19 + len(name)] == name and set(rec[19 + len(name):]) == {0}


def test_a_dirent_never_has_inode_zero():
    ino, *_ = DIRENT_HDR.unpack_from(guestabi.encode_dirent(b"n", 0, 4, 1))
    assert ino == 1  # (readdir skips entries of inode 0)


def test_dirents_are_the_kernels_own_records(tmp_path):
    for name in ("a", "bb", "c" * 5, "d" * 6, "e" * 13, "f" * 100):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "lnk").symlink_to("a")
    os.mkfifo(tmp_path / "fifo")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = ctypes.create_string_buffer(1 << 16)
        n = libc.syscall(SYS_GETDENTS64, fd, buf, ctypes.c_long(len(buf)))
        assert n > 0
        raw = buf.raw[:n]
    finally:
        os.close(fd)
    pos, seen = 0, {}
    while pos < len(raw):
        ino, off, reclen, d_type = DIRENT_HDR.unpack_from(raw, pos)
        name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0]
        assert guestabi.encode_dirent(name, ino, d_type, off) == raw[pos:pos + reclen]
        seen[name] = d_type
        pos += reclen
    assert len(seen) == 11  # . .. and the nine entries
    for name in seen:
        if name not in (b".", b".."):
            mode = os.lstat(os.path.join(os.fsencode(tmp_path), name)).st_mode
            # (0, DT_UNKNOWN: a file system that does not say)
            assert seen[name] in (0, guestabi.d_type_of(mode)), name


@pytest.mark.parametrize("mode, dt", [(stat.S_IFIFO, 1), (stat.S_IFCHR, 2), (stat.S_IFDIR, 4),
                                      (stat.S_IFBLK, 6), (stat.S_IFREG, 8), (stat.S_IFLNK, 10),
                                      (stat.S_IFSOCK, 12)])
def test_d_type_of_each_file_type(mode, dt):
    assert guestabi.d_type_of(mode | 0o4755) == dt
