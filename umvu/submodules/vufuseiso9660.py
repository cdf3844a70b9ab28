"""vufuseiso9660: an ISO 9660 image as a read-only file system (VUOS's vufuseiso9660),
on pycdlib (Debian's python3-pycdlib): Rock Ridge (modes, owners, times, symlinks, hard
links by inode number) where the image has it, else Joliet's names, else ISO 9660's
(versions ``;1`` left out), with modes 0555/0444 as the kernel's iso9660 shows them.

``vumount -t vufuseiso9660 IMAGE DIR``. Reads go to the image itself (pycdlib's file
objects), so mounting costs no copy. A corrupt image makes the mount fail with pycdlib's
error; a read that fails answers EIO."""
from __future__ import annotations

import calendar
import errno
import os
import stat

from umvu.submodules._rotree import ReadOnlyTree

OPTIONS = {"offset": int, "size": int, "readonly": bool}
SOURCE_IMAGE = True
READONLY = True


class Window:
    """The image's bytes from offset on, as a file object pycdlib reads."""

    def __init__(self, fd: int, offset: int, size: int | None) -> None:
        self.fd, self.offset = fd, offset
        self.size = size if size is not None else os.fstat(fd).st_size - offset
        self.pos = 0

    def seek(self, pos, whence=0):
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        return self.pos

    def tell(self):
        return self.pos

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.size - self.pos
        n = max(0, min(n, self.size - self.pos))
        data = os.pread(self.fd, n, self.offset + self.pos)
        self.pos += len(data)
        return data

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def close(self):
        pass


def _date_ns(d) -> int | None:
    """A DirectoryRecordDate (or Rock Ridge's) as ns since the epoch."""
    try:
        secs = calendar.timegm((1900 + d.years_since_1900, d.month, d.day_of_month,
                                d.hour, d.minute, d.second))
        return (secs - d.gmtoffset * 15 * 60) * 1_000_000_000
    except (AttributeError, ValueError, OverflowError):
        return None


class IsoFS(ReadOnlyTree):
    def __init__(self, source: bytes, options: dict | None = None) -> None:
        super().__init__()
        import pycdlib
        options = options or {}
        self.fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        self.iso = pycdlib.PyCdlib()
        try:
            self.iso.open_fp(Window(self.fd, options.get("offset", 0), options.get("size")))
        except Exception as e:  # (pycdlib's PyCdlibException and its struct errors)
            os.close(self.fd)
            raise OSError(errno.EINVAL, "%s: not an ISO 9660 image pycdlib reads: %s"
                          % (os.fsdecode(source), e)) from None
        if self.iso.has_rock_ridge():
            self.kind = "rr_path"
        elif self.iso.has_joliet():
            self.kind = "joliet_path"
        else:
            self.kind = "iso_path"
        self.inodes: dict = {}  # Rock Ridge's serial number -> node (hard links)
        try:
            self._walk()
        except Exception as e:
            os.close(self.fd)
            raise OSError(errno.EIO, "%s: cannot read the image: %s"
                          % (os.fsdecode(source), e)) from None

    def _name(self, name: str) -> str:
        if self.kind == "iso_path":
            name = name.split(";")[0]
            name = name[:-1] if name.endswith(".") else name
            return name.lower() if name.isupper() else name
        return name

    def _walk(self) -> None:
        for top, dirs, files in self.iso.walk(**{self.kind: "/"}):
            for name in dirs + files:
                path = top.rstrip("/") + "/" + name
                rec = self.iso.get_record(**{self.kind: path})
                self._add(self._name_path(path), path, rec)
            if top == "/":
                self._attrs(self.root, self.iso.get_record(**{self.kind: "/"}))

    def _name_path(self, path: str) -> bytes:
        return os.fsencode("/".join(self._name(p) for p in path.split("/")))

    def _attrs(self, n, rec) -> None:
        rr = getattr(rec, "rock_ridge", None) if self.kind == "rr_path" else None
        t = _date_ns(rec.date) if getattr(rec, "date", None) else None
        if rr is not None:
            n.mode = rr.get_file_mode()
            px = rr.dr_entries.px_record
            if px is not None:
                n.uid, n.gid = px.posix_user_id, px.posix_group_id
            tf = rr.dr_entries.tf_record
            if tf is not None:
                # (RRIP's TF order is creation, modify, access, attributes: pycdlib
                # names the second access_time and the third modification_time)
                times = [_date_ns(x) if x is not None else None for x in
                         (tf.access_time, tf.modification_time, tf.attribute_change_time)]
                n.mtime = times[0] or t or n.mtime
                n.atime = times[1] or n.mtime
                n.ctime = times[2] or n.mtime
                return
        if t is not None:
            n.mtime = n.atime = n.ctime = t

    def _add(self, shown: bytes, path: str, rec) -> None:
        rr = getattr(rec, "rock_ridge", None) if self.kind == "rr_path" else None
        serial = None
        if rr is not None and rr.dr_entries.px_record is not None:
            serial = getattr(rr.dr_entries.px_record, "posix_serial_number", None)
        if rec.is_dir():
            mode = stat.S_IFDIR | 0o555
        elif rr is not None and rec.is_symlink():
            mode = stat.S_IFLNK | 0o777
        else:
            mode = stat.S_IFREG | 0o444
        if serial and serial in self.inodes and not rec.is_dir():
            self.link(shown, self.inodes[serial])
            return
        n = self.add(shown, mode)
        self._attrs(n, rec)
        if rec.is_dir():
            return
        if stat.S_ISLNK(n.mode):
            n.target = os.fsencode(rr.symlink_path())
        elif stat.S_ISREG(n.mode):
            n.size = rec.get_data_length()
            n.data = self._reader(path)
            self.blocks += (n.size + 2047) // 2048
        if serial:
            self.inodes[serial] = shown

    def _reader(self, path: str):
        def read(off, size):
            with self.iso.open_file_from_iso(**{self.kind: path}) as f:
                f.seek(off)
                return f.read(size)
        return read


def vufuse_operations(source, options):
    return IsoFS(source, options)
