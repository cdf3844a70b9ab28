"""Make a test tree, or print a canonical listing of one.

    fstree.py make DIR [--small]   build the tree (see make())
    fstree.py walk DIR [--no-times] [--skip NAME]...
        one line per entry: path, type and mode, owner, size, mtime (ns), link target,
        sha256 of the contents, xattrs (name=sha256 of the value), hard-link group.
"""
import hashlib
import os
import random
import stat
import sys


def make(top, small=False):
    rnd = random.Random(7)
    os.makedirs(top, exist_ok=True)
    for d in range(8):
        sub = os.path.join(top, "dir%d" % d, "sub%d" % (d % 3))
        os.makedirs(sub, exist_ok=True)
        for i in range(25 if small else 60):
            path = os.path.join(sub if i % 2 else os.path.dirname(sub), "f%03d.txt" % i)
            with open(path, "wb") as f:
                f.write(rnd.randbytes(rnd.choice([0, 1, 59, 60, 61, 4095, 4096, 4097,
                                                  70000])))
            os.utime(path, ns=(1_600_000_000_123_456_789 + i, 1_500_000_000_987_654_321 + i))
    with open(os.path.join(top, "big.bin"), "wb") as f:
        chunk = rnd.randbytes(1 << 20)
        for i in range(3 if small else 24):
            f.write(chunk[i:] + chunk[:i])
    with open(os.path.join(top, "sparse"), "wb") as f:  # holes at start, middle, end
        f.seek(5 << 20)
        f.write(b"data in the middle")
        f.seek(40 << 20)
        f.write(b"end")
        f.truncate(64 << 20)
    with open(os.path.join(top, "allhole"), "wb") as f:
        f.truncate(3 << 20)
    os.symlink("dir0/f000.txt", os.path.join(top, "fast-link"))
    os.symlink("/" + "x" * 200 + "/long/target", os.path.join(top, "slow-link"))
    os.symlink("dangling", os.path.join(top, "dangling-link"))
    os.link(os.path.join(top, "big.bin"), os.path.join(top, "dir1", "big-hardlink"))
    os.link(os.path.join(top, "dir0", "f000.txt"), os.path.join(top, "dir2", "hl1"))
    os.link(os.path.join(top, "dir0", "f000.txt"), os.path.join(top, "dir3", "hl2"))
    uni = os.path.join(top, "ünïcødé ✓ 日本語")
    os.makedirs(uni)
    for name in ("ελληνικά.txt", "emoji-🙂", "space name", "tab\tname", "nl\nname",
                 "-dash", "." + "x" * 250):
        with open(os.path.join(uni, name), "w") as f:
            f.write(name + "\n")
    many = os.path.join(top, "many")
    os.makedirs(many)
    for i in range(2000 if small else 10000):
        open(os.path.join(many, "entry-%05d" % i), "w").close()
    x = os.path.join(top, "xattrs")
    with open(x, "w") as f:
        f.write("has attributes\n")
    os.setxattr(x, "user.small", b"v")
    os.setxattr(x, "user.empty", b"")
    os.setxattr(x, "user.medium", rnd.randbytes(300))
    os.setxattr(x, "user.binary", bytes(range(256)))
    os.setxattr(os.path.join(top, "dir0"), "user.on-a-dir", b"dir value")
    # an access ACL (user 1234 rw-), in the kernel's xattr format
    acl = (b"\x02\x00\x00\x00" + b"\x01\x00\x06\x00\xff\xff\xff\xff"
           + b"\x02\x00\x06\x00\xd2\x04\x00\x00" + b"\x04\x00\x04\x00\xff\xff\xff\xff"
           + b"\x10\x00\x06\x00\xff\xff\xff\xff" + b"\x20\x00\x04\x00\xff\xff\xff\xff")
    try:
        os.setxattr(x, "system.posix_acl_access", acl)
    except OSError:
        pass
    modes = os.path.join(top, "modes")
    os.makedirs(modes)
    for m in (0o4755, 0o2755, 0o1777, 0o000, 0o600, 0o777):
        p = os.path.join(modes, "m%o" % m)
        open(p, "w").close()
        os.chmod(p, m)
    os.mkfifo(os.path.join(modes, "fifo"))
    if os.getuid() == 0:
        os.mknod(os.path.join(modes, "chr"), 0o644 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(os.path.join(modes, "blk"), 0o600 | stat.S_IFBLK, os.makedev(259, 70000))
        owned = os.path.join(modes, "owned")
        open(owned, "w").close()
        os.chown(owned, 1234, 5678)
        os.chown(os.path.join(top, "dir4"), 100000, 100001)
    os.utime(os.path.join(top, "dir5"), ns=(1_000_000_000_000_000_001, 1_111_111_111_222_333_444))


def walk(top, times=True, skip=()):
    lines = []
    groups = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames
                             if os.path.relpath(os.path.join(dirpath, d), top) not in skip)
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            if rel in skip:
                continue
            st = os.lstat(path)
            fields = [repr(rel), "%o" % st.st_mode, "%d:%d" % (st.st_uid, st.st_gid)]
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                fields += ["size=%d" % st.st_size, h.hexdigest()[:16]]
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    groups.setdefault(key, rel)
                    fields.append("links=%d group=%r" % (st.st_nlink, groups[key]))
            elif stat.S_ISLNK(st.st_mode):
                try:
                    fields.append("-> %r" % os.readlink(path))
                except OSError as e:  # (fuse-ext2 cannot read a long ext4 symlink)
                    fields.append("-> <%s>" % e.strerror)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                fields.append("dev=%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
            if times and not stat.S_ISDIR(st.st_mode):
                fields.append("mtime=%d" % st.st_mtime_ns)
            if not stat.S_ISLNK(st.st_mode):
                try:
                    names = sorted(os.listxattr(path, follow_symlinks=False))
                except OSError as e:
                    names = ["<%s>" % e.strerror]
                for n in names:
                    try:
                        v = os.getxattr(path, n, follow_symlinks=False) if n[0] != "<" \
                            else b""
                    except OSError as e:  # (listed but not there: squashfuse's ACLs)
                        fields.append("%s=<%s>" % (n, e.strerror))
                        continue
                    fields.append("%s=%s" % (n, hashlib.sha256(v).hexdigest()[:12]))
            lines.append(" ".join(fields))
    return lines


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], "--small" in sys.argv)
    else:
        args = sys.argv[3:]
        skip = {args[i + 1] for i, a in enumerate(args) if a == "--skip"}
        print("\n".join(walk(sys.argv[2], "--no-times" not in args, skip)))
