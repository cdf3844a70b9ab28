"""Encoders of the x86_64 kernel structures the core writes into guest memory."""
from __future__ import annotations

import errno
import os
import stat
import struct

_STAT = struct.Struct("<QQQIIIiQqqqqQqQqQ3q")       # struct stat, 144 bytes
_STATFS = struct.Struct("<qqQQQQQiiqqq4q")          # struct statfs, 120 bytes
_DIRENT_HDR = struct.Struct("<QqHB")                # linux_dirent64 without name
STATX_BASIC_STATS = 0x7FF


def _f(st, name, default=0):
    v = getattr(st, name, None)
    return default if v is None else v


def _ns(st, name):
    ns = getattr(st, name + "_ns", None)
    if ns is None:
        ns = int(_f(st, name) * 1e9)
    return divmod(int(ns), 1_000_000_000)


def encode_stat(st) -> bytes:
    a, an = _ns(st, "st_atime")
    m, mn = _ns(st, "st_mtime")
    c, cn = _ns(st, "st_ctime")
    return _STAT.pack(_f(st, "st_dev"), st.st_ino, st.st_nlink, st.st_mode,
                      st.st_uid, st.st_gid, 0, _f(st, "st_rdev"), st.st_size,
                      _f(st, "st_blksize", 4096), _f(st, "st_blocks"),
                      a, an, m, mn, c, cn, 0, 0, 0)


STATX_FLAGS = 0x100 | 0x800 | 0x1000 | 0x6000  # NOFOLLOW, NO_AUTOMOUNT, EMPTY_PATH, SYNC_TYPE
STATX_SYNC_TYPE, STATX_RESERVED = 0x6000, 0x80000000


def statx_refusal(flags: int, mask: int, by_fd: bool = False) -> int:
    """EINVAL where the kernel's statx refuses its flags or mask (before any lookup;
    unknown flags only for a path, not for an fd's AT_EMPTY_PATH), else 0."""
    flags &= 0xFFFFFFFF
    if flags & STATX_SYNC_TYPE == STATX_SYNC_TYPE or mask & STATX_RESERVED or \
            (not by_fd and flags & ~STATX_FLAGS):
        return errno.EINVAL
    return 0


def encode_statx(st, mask: int) -> bytes:
    def ts(name):
        s, n = _ns(st, name)
        return struct.pack("<qIi", s, n, 0)
    dev = _f(st, "st_dev")
    rdev = _f(st, "st_rdev")
    head = struct.pack("<IIQIIIHHQQQQ", STATX_BASIC_STATS, _f(st, "st_blksize", 4096),
                       0, st.st_nlink, st.st_uid, st.st_gid, st.st_mode, 0, st.st_ino,
                       st.st_size, _f(st, "st_blocks"), 0)
    body = head + ts("st_atime") + struct.pack("<qIi", 0, 0, 0) + ts("st_ctime") + \
        ts("st_mtime") + struct.pack("<IIIIQ", os.major(rdev), os.minor(rdev),
                                     os.major(dev), os.minor(dev), 0)
    return body + b"\0" * (256 - len(body))


def encode_statfs(sv) -> bytes:
    return _STATFS.pack(getattr(sv, "f_type", 0x65735546), sv.f_bsize, sv.f_blocks,
                        sv.f_bfree, sv.f_bavail, sv.f_files, sv.f_ffree, 0, 0,
                        sv.f_namemax, sv.f_frsize, getattr(sv, "f_flag", 0), 0, 0, 0, 0)


def encode_dirent(name: bytes, ino: int, d_type: int, next_off: int) -> bytes:
    reclen = (_DIRENT_HDR.size + len(name) + 1 + 7) & ~7
    rec = _DIRENT_HDR.pack(ino or 1, next_off, reclen, d_type) + name
    return rec + b"\0" * (reclen - len(rec))


def d_type_of(mode: int) -> int:
    return stat.S_IFMT(mode) >> 12
