"""Apply a JSON list of file operations (stdin) under ROOT; print each one's outcome
(ok, a value, or the errno name) and then the final tree (fstree walk, no times)."""
import errno
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fstree import walk  # noqa: E402


def apply(root, op):
    kind, args = op[0], op[1:]
    p = [os.path.join(root, a) if isinstance(a, str) else a for a in args]
    if kind == "write":  # path, offset, size, byte, append
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if p[4] else 0)
        fd = os.open(p[0], flags, 0o644)
        try:
            data = bytes([p[3]]) * p[2]
            return os.write(fd, data) if p[4] else os.pwrite(fd, data, p[1])
        finally:
            os.close(fd)
    if kind == "read":
        with open(p[0], "rb") as f:
            return len(f.read())
    if kind == "truncate":
        os.truncate(p[0], p[1])
    elif kind == "mkdir":
        os.mkdir(p[0], 0o755)
    elif kind == "rmdir":
        os.rmdir(p[0])
    elif kind == "unlink":
        os.unlink(p[0])
    elif kind == "rename":
        os.rename(p[0], p[1])
    elif kind == "link":
        os.link(p[0], p[1])
    elif kind == "symlink":
        os.symlink(args[0], p[1])
    elif kind == "chmod":
        os.chmod(p[0], p[1])
    elif kind == "setxattr":
        os.setxattr(p[0], "user." + args[1], args[2].encode())
    elif kind == "removexattr":
        os.removexattr(p[0], "user." + args[1])
    elif kind == "listdir":
        return sorted(os.listdir(p[0]))
    elif kind == "stat":
        st = os.lstat(p[0])
        return [st.st_mode, st.st_size, st.st_nlink]
    else:
        raise ValueError(kind)
    return "ok"


def main():
    root = sys.argv[1]
    for op in json.load(sys.stdin):
        try:
            out = apply(root, op)
        except OSError as e:
            out = errno.errorcode.get(e.errno, str(e.errno))
        print(json.dumps(op), "->", json.dumps(out))
    print("\n".join(walk(root, times=False, skip={"lost+found"})))


main()
