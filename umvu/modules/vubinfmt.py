"""vubinfmt: binfmt_misc in the session (VUOS's vubinfmt), as the kernel's.

``vu_insmod vubinfmt; vumount -t vubinfmt none /proc/sys/fs/binfmt_misc`` gives the
session its own binfmt_misc (Documentation/admin-guide/binfmt-misc.rst): a rule is
registered by writing ``:name:type:offset:magic:mask:interpreter:flags`` to
``register`` (type M: magic bytes at offset, under a mask; type E: a file name
extension), listed and switched as ``NAME`` (read: its state and fields; write 1, 0 or
-1: enable, disable, remove), all of them through ``status`` (``enabled``/``disabled``;
-1 removes every rule). An exec in the session of a file a rule matches (the newest
rule first, as the kernel checks them) runs the interpreter instead, with the kernel's
argv: ``interpreter FILENAME ARGV[1:]``, or with flag P ``interpreter FILENAME ARGV``.
Flags: P (argv[0] preserved), F (the interpreter fixed at registration: a private root
mounted after it does not hide it), O (the interpreter gets the binary open, as
AT_EXECFD in its auxiliary vector: for qemu-user, binaries it may run but not read), C
(as O; the binary's set-user-ID bits do not apply under umvu, whose guests run with
no_new_privs). The interpreter's own file accesses and the program's are in the guest's
view. The host's binfmt_misc is never touched.
"""
from __future__ import annotations

import errno
import os
import stat
import struct
import time
import types

from umvu import kernelrules as kr
from umvu.api import PASS, Module, Native, log, s32, syscalls

NR_EXECVE = syscalls.number("execve")
BUF_SIZE = 256  # the kernel's BINPRM_BUF_SIZE: what magic and offset may reach
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_NULL, AT_EXECFD, AT_RSEQ_ALIGN = 0, 2, 28
FLAG_ORDER = "POCF"


class Rule:
    __slots__ = ("name", "kind", "offset", "magic", "mask", "interpreter", "flags",
                 "enabled", "fixed")

    def __init__(self, name, kind, offset, magic, mask, interpreter, flags):
        self.name, self.kind, self.offset = name, kind, offset
        self.magic, self.mask, self.interpreter = magic, mask, interpreter
        self.flags, self.enabled = flags, True
        self.fixed = None  # F: the host file of the interpreter, found at registration

    def status(self) -> bytes:
        """What reading /proc/sys/fs/binfmt_misc/NAME gives (the kernel's words)."""
        out = [b"enabled" if self.enabled else b"disabled",
               b"interpreter " + self.interpreter,
               b"flags: " + "".join(f for f in FLAG_ORDER if f in self.flags).encode()]
        if self.kind == "E":
            out.append(b"extension ." + self.magic)
        else:
            out += [b"offset %d" % self.offset, b"magic " + self.magic.hex().encode()]
            if self.mask is not None:
                out.append(b"mask " + self.mask.hex().encode())
        return b"\n".join(out) + b"\n"

    def matches(self, filename: bytes, head: bytes) -> bool:
        if self.kind == "E":
            dot = filename.rfind(b".")
            return dot >= 0 and filename[dot + 1:] == self.magic
        if self.offset + len(self.magic) > BUF_SIZE:
            return False
        part = head[self.offset:self.offset + len(self.magic)]
        if len(part) < len(self.magic):
            return False
        if self.mask is None:
            return part == self.magic
        return all((a ^ b) & m == 0 for a, b, m in zip(part, self.magic, self.mask))


def unescape(text: bytes) -> bytes:
    """The kernel's string_unescape of a magic or mask: \\xHH, \\\\, octal, C escapes."""
    out = bytearray()
    i = 0
    simple = {ord("n"): 10, ord("t"): 9, ord("r"): 13, ord("a"): 7, ord("b"): 8,
              ord("f"): 12, ord("v"): 11, ord("e"): 27, ord("\\"): 92, ord('"'): 34}
    while i < len(text):
        c = text[i]
        if c != 0x5C or i + 1 >= len(text):
            out.append(c)
            i += 1
            continue
        n = text[i + 1]
        if n in (ord("x"), ord("X")):
            digits = text[i + 2:i + 4]
            if len(digits) == 2 and all(d in b"0123456789abcdefABCDEF" for d in digits):
                out.append(int(digits, 16))
                i += 4
                continue
            if len(digits) >= 1 and digits[:1] in b"0123456789abcdefABCDEF":
                out.append(int(digits[:1], 16))
                i += 3
                continue
        if ord("0") <= n <= ord("7"):
            j = i + 1
            while j < len(text) and j < i + 4 and ord("0") <= text[j] <= ord("7"):
                j += 1
            out.append(int(text[i + 1:j], 8) & 0xFF)
            i = j
            continue
        if n in simple:
            out.append(simple[n])
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def parse_rule(buf: bytes) -> Rule:
    """A write to register, as the kernel's create_entry parses it (EINVAL if bad)."""
    bad = OSError(errno.EINVAL, "bad binfmt_misc rule")
    if buf.endswith(b"\n"):
        buf = buf[:-1]
    if len(buf) < 11 or len(buf) > 1920:
        raise bad
    delim = buf[:1]
    fields = buf[1:].split(delim)
    if len(fields) < 7:
        raise bad
    name, kind, offset, magic, mask, interpreter = fields[:6]
    flags_text = delim.join(fields[6:])
    if not name or b"/" in name or name in (b".", b"..") or len(name) > 255:
        raise bad
    if kind not in (b"M", b"E"):
        raise bad
    flags = ""
    for c in flags_text.decode(errors="replace"):
        if c in "POF":
            flags += c
        elif c == "C":
            flags += "CO"
        else:
            break
    if len(flags_text.decode(errors="replace")) != len(
            flags_text.decode(errors="replace").rstrip()) or any(
            c not in "POCF" for c in flags_text.decode(errors="replace")):
        raise bad
    if not interpreter:
        raise bad
    if kind == b"M":
        try:
            off = int(offset or b"0")
        except ValueError:
            raise bad from None
        if off < 0:
            raise bad
        magic_b = unescape(magic)
        if not magic_b:
            raise bad
        mask_b = unescape(mask) if mask else None
        if mask_b is not None:
            if len(mask_b) < len(magic_b):
                raise bad
            mask_b = mask_b[:len(magic_b)]
            magic_b = bytes(a & m for a, m in zip(magic_b, mask_b))  # (as the kernel)
        if off + len(magic_b) > BUF_SIZE:
            raise bad
        return Rule(name, "M", off, magic_b, mask_b, interpreter, set(flags))
    if not magic or b"/" in magic:
        raise bad
    return Rule(name, "E", 0, magic, None, interpreter, set(flags))


def parse_command(buf: bytes) -> int:
    """1 (disable), 2 (enable), 3 (remove), as the kernel's parse_command."""
    if len(buf) > 3:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    if buf.endswith(b"\n"):
        buf = buf[:-1]
    command = {b"0": 1, b"1": 2, b"-1": 3}.get(buf)
    if command is None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    return command


class BinfmtService:
    """The mounted binfmt_misc directory: register, status, a file per rule."""

    def __init__(self, module) -> None:
        self.module = module
        self.api = module.api
        self.rules: list[Rule] = []  # newest first, as the kernel checks them
        self.enabled = True
        self.made_ns = time.time_ns()
        self.ino = {}

    def _rule(self, name: bytes) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def lstat(self, path):
        name = path[1:]
        if path == b"/":
            mode, nlink = stat.S_IFDIR | 0o755, 2
        elif name == b"register":
            mode, nlink = stat.S_IFREG | 0o200, 1
        elif name == b"status" or self._rule(name) is not None:
            mode, nlink = stat.S_IFREG | 0o644, 1
        else:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        ino = self.ino.setdefault(name, len(self.ino) + 1)
        return types.SimpleNamespace(
            st_mode=mode, st_ino=ino, st_dev=os.makedev(0, 0x4C), st_nlink=nlink,
            st_uid=0, st_gid=0, st_rdev=0, st_size=0, st_blksize=4096, st_blocks=0,
            st_atime_ns=self.made_ns, st_mtime_ns=self.made_ns, st_ctime_ns=self.made_ns)

    def access(self, path, mode):
        st = self.lstat(path)
        if mode & os.W_OK and not self._root():
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        if mode & os.R_OK and not st.st_mode & 0o444:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    def _root(self) -> bool:
        """Who may change the rules: root, or umvu's own user (the session is its)."""
        uid = self.api.caller()[0]
        return uid == 0 or uid == os.getuid()

    def open(self, path, flags, mode):
        st = self.lstat(path)
        if flags & os.O_CREAT and flags & os.O_EXCL:
            raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
        writing = flags & 3 != os.O_RDONLY
        if stat.S_ISDIR(st.st_mode):
            if writing:
                raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
            return types.SimpleNamespace(name=None)
        if writing and not self._root():
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        if path == b"/register" and flags & 3 == os.O_RDONLY:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return types.SimpleNamespace(name=path[1:])

    def getdents(self, h, offset):
        names = [b".", b"..", b"register", b"status"] + [r.name for r in self.rules[::-1]]
        return [(n, i + 1, 4 if i < 2 else 8, i + 1) for i, n in enumerate(names)][offset:]

    def _text(self, name: bytes) -> bytes:
        if name == b"status":
            return b"enabled\n" if self.enabled else b"disabled\n"
        rule = self._rule(name)
        if rule is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        return rule.status()

    def pread(self, h, size, offset):
        if h.name is None:
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        if h.name == b"register":
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return self._text(h.name)[offset:offset + size]

    def pwrite(self, h, data, offset):
        """Each write is one command, taken at once (as the kernel's)."""
        if h.name == b"register":
            rule = parse_rule(bytes(data))
            if self._rule(rule.name) is not None or rule.name in (b"register", b"status"):
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
            if "F" in rule.flags:
                rule.fixed = self.api.exec_path(rule.interpreter)
            self.rules.insert(0, rule)
            log.info("vubinfmt: rule %s registered (%s)", rule.name.decode(errors="replace"),
                     rule.interpreter.decode(errors="replace"))
            return len(data)
        command = parse_command(bytes(data))
        if h.name == b"status":
            if command == 3:
                self.rules.clear()
            else:
                self.enabled = command == 2
            return len(data)
        rule = self._rule(h.name)
        if rule is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        if command == 3:
            self.rules.remove(rule)
        else:
            rule.enabled = command == 2
        return len(data)

    def ftruncate(self, h, length):
        pass  # (echo > file truncates first: nothing to do, as in /proc)

    def truncate(self, path, length):
        self.lstat(path)

    def fstat(self, h):
        return self.lstat(b"/" + h.name if h.name else b"/")

    def close(self, h):
        pass

    def getxattr(self, path, name):
        self.lstat(path)
        raise OSError(errno.ENODATA, os.strerror(errno.ENODATA))

    def listxattr(self, path):
        self.lstat(path)
        return []

    def statfs(self, path):
        return types.SimpleNamespace(f_bsize=4096, f_frsize=4096, f_blocks=0, f_bfree=0,
                                     f_bavail=0, f_files=0, f_ffree=0, f_namemax=255,
                                     f_type=0x42494E4D, f_flag=0)  # (BINFMTFS_MAGIC)

    # ------------------------------------------------------------ exec
    def match(self, filename: bytes, head: bytes) -> Rule | None:
        if not self.enabled:
            return None
        for rule in self.rules:
            if rule.enabled and rule.matches(filename, head):
                return rule
        return None


class ExecHook:
    """execve/execveat: a file a rule matches runs its interpreter."""

    def __init__(self, module) -> None:
        self.module = module
        self.api = module.api
        self.pending_execfd: dict[int, bytes] = {}  # tid -> binary (flag O), after exec

    def syscall(self, t, sc, args):
        service = self.module.service
        if service is None or not service.enabled or not service.rules:
            return PASS
        api = self.api
        if sc.name == "execve":
            path_addr, argv_addr, envp_addr = args[0], args[1], args[2]
            dirfd, flags = AT_FDCWD, 0
        else:
            dirfd, path_addr, argv_addr, envp_addr = s32(args[0]), args[1], args[2], args[3]
            flags = s32(args[4])
        try:
            given = api.guest_read_str(path_addr) if path_addr else b""
        except OSError:
            return PASS
        if not given and not flags & AT_EMPTY_PATH:
            return PASS
        if dirfd == AT_FDCWD or given.startswith(b"/"):
            filename = given
        else:  # (the kernel's bprm->filename of an execveat)
            filename = b"/dev/fd/%d" % dirfd + (b"/" + given if given else b"")
        try:
            path, st = api.resolve(dirfd, given, True)
        except OSError:
            return PASS
        if st is None or not stat.S_ISREG(st.st_mode) or not self._may_exec(st):
            return PASS  # (the kernel, or the core, says why)
        try:
            f = api.open_path(path)
            try:
                head = f.pread(BUF_SIZE, 0)
            finally:
                f.close()
        except OSError:
            head = b""  # (an executable one may not read: E rules still match)
        rule = service.match(filename, head)
        if rule is None:
            return PASS
        try:
            interp_host = rule.fixed if rule.fixed is not None else \
                api.exec_path(rule.interpreter)
        except OSError as e:
            return -e.errno
        try:
            argv = self._pointers(argv_addr)
        except OSError:
            return -errno.EFAULT
        strings = [interp_host, rule.interpreter, filename]
        blob = b"".join(s + b"\0" for s in strings)
        need = len(blob) + 8 * (len(argv) + 3) + 16
        try:
            base = api.scratch_addr(need)
        except ValueError:
            return -errno.E2BIG
        addrs, pos = [], base
        for s in strings:
            addrs.append(pos)
            pos += len(s) + 1
        array_addr = (base + len(blob) + 15) & ~15
        rest = argv if "P" in rule.flags else argv[1:]
        pointers = [addrs[1], addrs[2]] + rest + [0]
        api.guest_write(base, blob)
        api.guest_write(array_addr, struct.pack("<%dQ" % len(pointers), *pointers))
        if "O" in rule.flags:  # (opened now, not inherited past the interpreter's exec)
            try:
                self.pending_execfd[t.tid] = api.open_in(t.tid, api.exec_path(path),
                                                         os.O_RDONLY)
            except OSError as e:
                return -e.errno
        return Native([addrs[0], array_addr, envp_addr, 0, 0, 0], nr=NR_EXECVE,
                      on_exit=lambda ret, tid=t.tid: self._failed(tid, ret))

    def _failed(self, tid: int, ret: int):
        """The interpreter's exec failed: the fd opened for it goes."""
        if ret < 0:
            fd = self.pending_execfd.pop(tid, None)
            if fd is not None:
                self.api.close_in(tid, fd)
        return None

    def _may_exec(self, st) -> bool:
        return kr.permitted(st, kr.X, kr.cred_of(self.api))

    def _pointers(self, guest_addr: int) -> list[int]:
        out = []
        if guest_addr == 0:
            return out
        for i in range(4096):
            p = struct.unpack("<Q", self.api.guest_read(guest_addr + 8 * i, 8))[0]
            if p == 0:
                return out
            out.append(p)
        raise OSError(errno.E2BIG, os.strerror(errno.E2BIG))

    def after_exec(self, tid: int) -> None:
        """Flag O: the new interpreter gets the binary open, its fd as AT_EXECFD (in the
        place of AT_RSEQ_ALIGN, which its libc does not read)."""
        fd = self.pending_execfd.pop(tid, None)
        if fd is None:
            return
        try:
            self._give_execfd(tid, fd)
        except OSError as e:
            log.warning("vubinfmt: pid %d: no AT_EXECFD: %s", tid, e.strerror)

    def _give_execfd(self, tid: int, fd: int) -> None:
        api = self.api
        with open("/proc/%d/stat" % tid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        sp = int(fields[25])  # startstack: argc, argv, envp, auxv
        argc = struct.unpack("<Q", api.read_memory(tid, sp, 8))[0]
        pos = sp + 8 * (argc + 2)
        for _ in range(100000):
            if struct.unpack("<Q", api.read_memory(tid, pos, 8))[0] == 0:
                break
            pos += 8
        pos += 8
        slot = None
        for _ in range(64):
            key = struct.unpack("<Q", api.read_memory(tid, pos, 8))[0]
            if key == AT_NULL:
                break
            if key == AT_RSEQ_ALIGN:
                slot = pos
            pos += 16
        if slot is None:
            raise OSError(errno.ENOSPC, "no auxiliary vector entry to use")
        api.write_memory(tid, slot, struct.pack("<QQ", AT_EXECFD, fd))


class VuBinfmt(Module):
    name = "vubinfmt"
    description = "binfmt_misc in the session (interpreters for foreign binaries)"
    filesystems = ("vubinfmt",)
    creates_target = True  # (/proc/sys/fs/binfmt_misc need not exist)
    source_is_path = False

    def __init__(self, api) -> None:
        super().__init__(api)
        self.service: BinfmtService | None = None
        self.hook = ExecHook(self)
        self.entries: list = []

    def mount(self, source, target, fstype, flags, options):
        if self.service is not None:
            raise OSError(errno.EBUSY, "binfmt_misc is mounted already in this session")
        self.service = BinfmtService(self)
        self.entries = self.api.claim_syscalls(self, ("execve", "execveat"), self.hook)
        self.api.on_exec(self.hook.after_exec)
        return self.service

    def umount(self, service, flags) -> None:
        for e in self.entries:
            self.api.remove_entry(e)
        self.entries = []
        self.api.drop_exec_hook(self.hook.after_exec)
        self.service = None

    def cleanup(self) -> None:
        if self.service is not None:
            raise OSError(errno.EBUSY, "binfmt_misc is mounted")
