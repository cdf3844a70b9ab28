"""vudevqcow2: a qcow2 image (QEMU's format, versions 2 and 3) as a partitioned disk:
``vumount -t vudevqcow2 [-o ro] vm.qcow2 /dev/hda`` gives /dev/hda and a device per
MBR/GPT partition, read-write.

Read: L1 and L2 tables, unallocated clusters (zeros, or the backing file's data), zero
clusters, compressed clusters (deflate, as qemu writes them), backing files (qcow2 or
raw, named in the header, read-only). Written: a cluster that is the image's alone
(COPIED) in place; any other (unallocated, zero, compressed, shared with a snapshot, or
read from the backing file) is copied into a new cluster at the end of the image first,
its refcount set and the old one's dropped, then the L2 entry (and, for a new or shared
L2 table, the L1 entry) written: so ``qemu-img check`` finds the image consistent. A
snapshot's tables are never written. Refused at mount: encryption, external data files,
extended L2 entries, zstd compression, an image marked corrupt or dirty (run ``qemu-img
check -r all``), and what is not qcow2."""
from __future__ import annotations

import errno
import os
import struct
import zlib

from umvu.submodules._vmdisk import ImageDevice, refused

OPTIONS = {"ro": bool, "rw": bool}
MAGIC = b"QFI\xfb"
COPIED, COMPRESSED, ZERO = 1 << 63, 1 << 62, 1
OFFSET_MASK = 0x00FFFFFFFFFFFE00
EXT_BACKING_FORMAT = 0xE2792ACA




class Raw:
    """A raw backing file."""

    def __init__(self, path: bytes) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, size: int) -> bytes:
        data = os.pread(self.fd, size, offset) if offset < self.size else b""
        return data + bytes(size - len(data))

    def close(self) -> None:
        os.close(self.fd)


class Qcow2:
    def __init__(self, path: bytes, writable: bool, opener=None, depth: int = 0) -> None:
        self.path = path
        self.writable = writable
        if opener is not None:
            self.fd = opener(path, os.O_RDWR if writable else os.O_RDONLY)
        else:
            self.fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        try:
            self._header(depth)
        except BaseException:
            os.close(self.fd)
            raise

    # ------------------------------------------------------------ the header
    def _header(self, depth: int) -> None:
        h = os.pread(self.fd, 112, 0)
        if len(h) < 72 or h[:4] != MAGIC:
            raise refused(self.path, "not a qcow2 image")
        (self.version, bf_off, bf_size, self.cluster_bits, self.size, crypt, l1_size,
         l1_off, rt_off, rt_clusters, nb_snap, snap_off) = struct.unpack_from(
            ">IQIIQIIQQIIQ", h, 4)
        if self.version not in (2, 3):
            raise refused(self.path, "qcow2 version %d (2 and 3 are read)" % self.version)
        if not 9 <= self.cluster_bits <= 21:
            raise refused(self.path, "bad cluster size 2^%d" % self.cluster_bits)
        if crypt:
            raise refused(self.path, "encrypted qcow2 images are not supported")
        self.refcount_order, header_len, incompat = 4, 72, 0
        if self.version == 3:
            if len(h) < 104:
                raise refused(self.path, "truncated header")
            incompat = struct.unpack_from(">Q", h, 72)[0]
            self.refcount_order, header_len = struct.unpack_from(">II", h, 96)
            if incompat & 2:
                raise refused(self.path, "marked corrupt (qemu-img check -r all repairs it)")
            if incompat & 1:
                raise refused(self.path, "dirty: refcounts need repair (qemu-img check -r all)")
            if incompat & 4:
                raise refused(self.path, "an external data file is not supported")
            if incompat & 16:
                raise refused(self.path, "extended L2 entries are not supported")
            if incompat & 8 and len(h) > 104 and h[104] != 0:
                raise refused(self.path, "zstd compression is not supported")
            if incompat & ~0x1F:
                raise refused(self.path, "unknown incompatible features %#x" % incompat)
            if self.refcount_order > 6:
                raise refused(self.path, "bad refcount order %d" % self.refcount_order)
        self.cluster = 1 << self.cluster_bits
        self.l2_entries = self.cluster // 8
        self.rb_entries = self.cluster * 8 >> self.refcount_order
        span = self.cluster * self.l2_entries  # (what one L2 table maps)
        need = (self.size + span - 1) // span
        if l1_size < need or l1_size > 1 << 25 or l1_off % self.cluster:
            raise refused(self.path, "bad L1 table (%d entries for %d)" % (l1_size, need))
        self.l1_off = l1_off
        raw = os.pread(self.fd, 8 * l1_size, l1_off)
        if len(raw) != 8 * l1_size:
            raise refused(self.path, "the L1 table is past the end of the file")
        self.l1 = list(struct.unpack(">%dQ" % l1_size, raw))
        for e in self.l1:
            if e & OFFSET_MASK and (e & OFFSET_MASK) % self.cluster:
                raise refused(self.path, "an L1 entry is not cluster aligned")
        self.rt_off, self.rt_clusters = rt_off, rt_clusters
        raw = os.pread(self.fd, rt_clusters * self.cluster, rt_off)
        if len(raw) != rt_clusters * self.cluster or rt_off % self.cluster:
            raise refused(self.path, "bad refcount table")
        self.rt = list(struct.unpack(">%dQ" % (len(raw) // 8), raw))
        self.l2_cache: dict[int, list] = {}
        self.rb_cache: dict[int, bytearray] = {}
        self.file_end = self._aligned(os.fstat(self.fd).st_size)
        self.backing = None
        if bf_off and bf_size:
            name = os.pread(self.fd, bf_size, bf_off)
            fmt = None
            off = header_len if self.version == 3 else 72
            while off + 8 <= self.cluster:
                etype, elen = struct.unpack(">II", os.pread(self.fd, 8, off))
                if etype == 0:
                    break
                if etype == EXT_BACKING_FORMAT:
                    fmt = os.pread(self.fd, elen, off + 8)
                off += 8 + ((elen + 7) & ~7)
            where = name if name.startswith(b"/") else os.path.join(
                os.path.dirname(self.path), name)
            if depth > 16:
                raise refused(self.path, "backing files nest too deep")
            try:
                with open(where, "rb") as f:
                    magic = f.read(4)
            except OSError as e:
                raise OSError(e.errno, "%s: backing file %s: %s" % (
                    os.fsdecode(self.path), os.fsdecode(name), e.strerror)) from None
            if fmt == b"qcow2" or (fmt is None and magic == MAGIC):
                self.backing = Qcow2(where, False, depth=depth + 1)
            else:
                self.backing = Raw(where)
        self.zcache = (None, b"")
        self.snapshots = self._snapshot_names(nb_snap, snap_off)

    def _snapshot_names(self, count: int, off: int) -> list[bytes]:
        """The snapshots' names (they are read as the image is, never written)."""
        names = []
        for _ in range(min(count, 65536)):
            head = os.pread(self.fd, 40, off)
            if len(head) < 40:
                break
            id_len, name_len = struct.unpack_from(">HH", head, 12)
            extra = struct.unpack_from(">I", head, 36)[0]
            base = off + 40 + extra
            names.append(os.pread(self.fd, name_len, base + id_len))
            off = (base + id_len + name_len + 7) & ~7
        return names

    def _aligned(self, n: int) -> int:
        return (n + self.cluster - 1) & ~(self.cluster - 1)

    # ------------------------------------------------------------ tables
    def _l2(self, l2_off: int) -> list:
        table = self.l2_cache.get(l2_off)
        if table is None:
            raw = os.pread(self.fd, self.cluster, l2_off)
            if len(raw) != self.cluster:
                raise OSError(errno.EIO, "%s: an L2 table past the end of the file"
                              % os.fsdecode(self.path))
            table = list(struct.unpack(">%dQ" % self.l2_entries, raw))
            if len(self.l2_cache) > 4096:
                self.l2_cache.clear()
            self.l2_cache[l2_off] = table
        return table

    def _entry(self, vcluster: int):
        """(L2 table offset, L2 entry) of a guest cluster (0, 0 if unallocated)."""
        i1 = vcluster // self.l2_entries
        if i1 >= len(self.l1):
            raise OSError(errno.EIO, "past the L1 table")
        l2_off = self.l1[i1] & OFFSET_MASK
        if not l2_off:
            return 0, 0
        return l2_off, self._l2(l2_off)[vcluster % self.l2_entries]

    # ------------------------------------------------------------ reading
    def read(self, offset: int, size: int) -> bytes:
        out = []
        end = min(offset + size, self.size)
        while offset < end:
            vc = offset >> self.cluster_bits
            within = offset & (self.cluster - 1)
            n = min(end - offset, self.cluster - within)
            out.append(self._read_cluster(vc, within, n))
            offset += n
        return b"".join(out)

    def _read_cluster(self, vc: int, within: int, n: int) -> bytes:
        _, e = self._entry(vc)
        if e & COMPRESSED:
            return self._compressed(e)[within:within + n]
        host = e & OFFSET_MASK
        if e & ZERO or (not host and self.backing is None):
            return bytes(n)
        if not host:
            return self.backing.read((vc << self.cluster_bits) + within, n)
        data = os.pread(self.fd, n, host + within)
        if len(data) != n:
            raise OSError(errno.EIO, "%s: a data cluster past the end of the file"
                          % os.fsdecode(self.path))
        return data

    def _compressed_span(self, e: int):
        x = 62 - (self.cluster_bits - 8)
        host = e & ((1 << x) - 1)
        sectors = ((e >> x) & ((1 << (self.cluster_bits - 8)) - 1)) + 1
        return host, sectors * 512 - (host & 511)

    def _compressed(self, e: int) -> bytes:
        if self.zcache[0] == e:
            return self.zcache[1]
        host, length = self._compressed_span(e)
        raw = os.pread(self.fd, length, host)
        try:
            d = zlib.decompressobj(-12)
            data = d.decompress(raw, self.cluster)
        except zlib.error as err:
            raise OSError(errno.EIO, "%s: a compressed cluster does not inflate: %s"
                          % (os.fsdecode(self.path), err)) from None
        if len(data) != self.cluster:
            raise OSError(errno.EIO, "%s: a compressed cluster inflates to %d bytes"
                          % (os.fsdecode(self.path), len(data)))
        self.zcache = (e, data)
        return data

    # ------------------------------------------------------------ refcounts
    def _rb(self, index: int) -> bytearray | None:
        """The refcount block for rt index (None: none yet)."""
        if index >= len(self.rt):
            raise OSError(errno.ENOSPC, "%s: the refcount table is full"
                          % os.fsdecode(self.path))
        off = self.rt[index] & OFFSET_MASK
        if not off:
            return None
        block = self.rb_cache.get(off)
        if block is None:
            block = bytearray(os.pread(self.fd, self.cluster, off))
            self.rb_cache[off] = block
        return block

    def _refcount_get(self, hc: int) -> int:
        block = self._rb(hc // self.rb_entries)
        if block is None:
            return 0
        return self._rc_field(block, hc % self.rb_entries)

    def _rc_field(self, block, i: int, value: int | None = None):
        bits = 1 << self.refcount_order
        if bits >= 8:
            width = bits // 8
            if value is None:
                return int.from_bytes(block[i * width:(i + 1) * width], "big")
            block[i * width:(i + 1) * width] = value.to_bytes(width, "big")
            return None
        per = 8 // bits
        byte, shift = i // per, (i % per) * bits
        mask = (1 << bits) - 1
        if value is None:
            return (block[byte] >> shift) & mask
        block[byte] = (block[byte] & ~(mask << shift)) | (value << shift)
        return None

    def _refcount_set(self, hc: int, value: int) -> None:
        index = hc // self.rb_entries
        block = self._rb(index)
        if block is None:  # a new refcount block, at the end (counting itself)
            block_off = self.file_end
            self.file_end += self.cluster
            os.pwrite(self.fd, bytes(self.cluster), block_off)
            self.rt[index] = block_off
            os.pwrite(self.fd, struct.pack(">Q", block_off), self.rt_off + 8 * index)
            self.rb_cache[block_off] = block = bytearray(self.cluster)
            self._refcount_set(block_off >> self.cluster_bits, 1)
        self._rc_field(block, hc % self.rb_entries, value)
        off = self.rt[index] & OFFSET_MASK
        width = max(1, (1 << self.refcount_order) // 8)
        first = (hc % self.rb_entries) * (1 << self.refcount_order) // 8
        os.pwrite(self.fd, bytes(block[first:first + width]), off + first)

    def _alloc(self) -> int:
        """A new cluster at the end of the image, its refcount 1."""
        off = self.file_end
        self.file_end += self.cluster
        self._refcount_set(off >> self.cluster_bits, 1)
        return off

    def _drop(self, hc: int) -> None:
        rc = self._refcount_get(hc)
        if rc > 0:
            self._refcount_set(hc, rc - 1)

    def _clusters_of(self, e: int) -> range:
        """The host clusters an L2 entry holds (a standard one's, or those its
        compressed data spans)."""
        if e & COMPRESSED:
            host, length = self._compressed_span(e)
            return range(host >> self.cluster_bits,
                         ((host + length - 1) >> self.cluster_bits) + 1)
        if e & OFFSET_MASK:
            hc = (e & OFFSET_MASK) >> self.cluster_bits
            return range(hc, hc + 1)
        return range(0)

    def _drop_entry(self, e: int) -> None:
        """The clusters an L2 entry held lose a reference."""
        for hc in self._clusters_of(e):
            self._drop(hc)

    # ------------------------------------------------------------ writing
    def write(self, data: bytes, offset: int) -> int:
        if offset + len(data) > self.size:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done = 0
        while done < len(data):
            vc = (offset + done) >> self.cluster_bits
            within = (offset + done) & (self.cluster - 1)
            n = min(len(data) - done, self.cluster - within)
            self._write_cluster(vc, within, data[done:done + n])
            done += n
        return done

    def _l2_for_write(self, vc: int) -> tuple[int, list]:
        """The guest cluster's L2 table, the image's alone (made or copied if needed)."""
        i1 = vc // self.l2_entries
        e1 = self.l1[i1]
        l2_off = e1 & OFFSET_MASK
        if l2_off and e1 & COPIED:
            return l2_off, self._l2(l2_off)
        old = self._l2(l2_off) if l2_off else [0] * self.l2_entries
        new_off = self._alloc()
        table = list(old)
        if l2_off:  # (shared with a snapshot: its clusters are counted once per L1 table
            table = [e & ~COPIED for e in table]  # already, as qemu counts them)
        os.pwrite(self.fd, struct.pack(">%dQ" % self.l2_entries, *table), new_off)
        self.l2_cache[new_off] = table
        self.l1[i1] = new_off | COPIED
        os.pwrite(self.fd, struct.pack(">Q", self.l1[i1]), self.l1_off + 8 * i1)
        if l2_off:
            self._drop(l2_off >> self.cluster_bits)
        return new_off, table

    def _write_cluster(self, vc: int, within: int, part: bytes) -> None:
        l2_off, table = self._l2_for_write(vc)
        i2 = vc % self.l2_entries
        e = table[i2]
        host = e & OFFSET_MASK
        if host and e & COPIED and not e & (COMPRESSED | ZERO):
            os.pwrite(self.fd, part, host + within)
            return
        if len(part) == self.cluster:
            whole = part
        else:
            current = bytearray(self._read_cluster(vc, 0, self.cluster))
            current[within:within + len(part)] = part
            whole = bytes(current)
        new = self._alloc()
        os.pwrite(self.fd, whole, new)
        table[i2] = new | COPIED
        os.pwrite(self.fd, struct.pack(">Q", table[i2]), l2_off + 8 * i2)
        self._drop_entry(e)
        self.zcache = (None, b"")

    def fsync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.backing is not None:
            self.backing.close()
        os.close(self.fd)


class Device(ImageDevice):
    image_format, format_name = Qcow2, "qcow2"

    def __init__(self, source: bytes, options: dict, api):
        super().__init__(source, options, api)
        if self.disk.snapshots:
            from umvu.api import log
            log.info("vudevqcow2: %s has snapshots %s (the active image is the one served)",
                     os.fsdecode(source), ", ".join(os.fsdecode(n) for n in self.disk.snapshots))
