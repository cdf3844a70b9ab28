"""The vu_* commands: thin wrappers of umvu's virtual system calls (console scripts).

Each says clearly when it is not running under umvu (the virtual syscalls answer ENOSYS
from the real kernel)."""
from __future__ import annotations

import errno
import os
import sys

from umvu.core import syscalls
from umvu.core.abi import (MS_BIND, MS_MOVE, MS_RDONLY, MS_REC, VUCTL_ACCEPTS, VUCTL_FSTYPES,
                           VUCTL_GETDEBUGTAGS, VUCTL_GETNAME, VUCTL_LASTERROR, VUCTL_LSOF,
                           VUCTL_MOUNTS, VUCTL_PS, VUCTL_SETDEBUGTAGS, VUCTL_SETLOGLEVEL,
                           VUCTL_SETNAME)
from umvu.core.tracer import knock, raw_syscall
from umvu.manual import PAGES, help_text

NR = {name: syscalls.number(name) for name in ("vu_insmod", "vu_rmmod", "vu_lsmod", "vuctl")}


class Fail(Exception):
    pass


class Usage(Fail):
    """A usage error: one line, exit status 2."""


class Options:
    """What parse() found: the options by name, ``args`` the operands."""

    def __init__(self, **defaults) -> None:
        self.__dict__.update(defaults)
        self.args: list[str] = []


def parse(prog: str, argv: list[str], usage: str, flags: dict | None = None,
          valued: dict | None = None, nargs: tuple = (0, 0)) -> Options:
    """Parse argv: ``flags`` {"-r": "read_only", "--read-only": "read_only"...} set True,
    ``valued`` {"-t": "types"...} take a value (-tX, -t X, --types=X); nargs (min, max)
    operands (max None: any). -h/--help prints usage and exits 0; anything wrong is a
    one-line Usage error."""
    flags, valued = flags or {}, valued or {}
    opts = Options(**{n: False for n in flags.values()}, **{n: "" for n in valued.values()})
    rest = list(argv)
    while rest:
        a = rest.pop(0)
        if a == "--":
            opts.args += rest
            break
        if a in ("-h", "--help"):
            print(help_text(prog) if prog in PAGES else "usage: %s %s" % (prog, usage))
            raise SystemExit(0)
        if not a.startswith("-") or a == "-":
            opts.args.append(a)
            continue
        name, eq, value = a.partition("=") if a.startswith("--") else (a[:2], "", a[2:])
        if name in flags and not (eq or value):
            setattr(opts, flags[name], True)
        elif name in flags and not a.startswith("--") and all(
                "-" + c in flags for c in value):
            for c in "-" + a[1:]:  # -rw: two flags
                if c != "-":
                    setattr(opts, flags["-" + c], True)
        elif name in valued:
            if not (eq or value):
                if not rest:
                    raise Usage("%s: option %s needs a value (usage: %s %s)"
                                % (prog, name, prog, usage))
                value = rest.pop(0)
            setattr(opts, valued[name], value)
        else:
            raise Usage("%s: unknown option %s (usage: %s %s)" % (prog, a, prog, usage))
    low, high = nargs
    if len(opts.args) < low or (high is not None and len(opts.args) > high):
        raise Usage("%s: %s (usage: %s %s)" % (
            prog, "missing operand" if len(opts.args) < low else "too many operands",
            prog, usage))
    return opts


def parse_page(prog: str, argv: list[str], nargs: tuple = (0, 0)) -> Options:
    """parse() with the options, usage and help of prog's page (umvu.manual)."""
    page = PAGES[prog]
    flags = {n: o.dest for o in page.options if o.kind == "flag" and o.dest != "help"
             for n in o.names}
    valued = {n: o.dest for o in page.options if o.kind != "flag" for n in o.names}
    return parse(prog, argv, page.synopsis or "(no argument)", flags, valued, nargs)


def _prog() -> str:
    return os.path.basename(sys.argv[0])


def _check(ret: int, what: str = "") -> int:
    if ret == -errno.ENOSYS:
        raise Fail("%s: not running under umvu (start a shell with: umvu bash)" % _prog())
    if ret < 0:
        raise Fail("%s: %s%s" % (_prog(), what + ": " if what else "", os.strerror(-ret)))
    return ret


def _read_buffer(nr: int, *lead) -> bytes:
    """Call a buffer-filling virtual syscall: ask the size, then fetch."""
    for _ in range(5):
        need = _check(raw_syscall(nr, *lead, 0, 0))
        buf = bytearray(need + 1)
        got = raw_syscall(nr, *lead, buf, len(buf))
        if got == -errno.ERANGE:
            continue
        return bytes(buf[:_check(got)])
    raise Fail("%s: the answer keeps changing" % _prog())


def _main(fn):
    def wrapper(argv=None):
        # under umvu: the hypervisor is up and this process traps virtual calls
        knock(module_next=fn.__name__ == "vu_insmod")
        try:
            return fn(sys.argv[1:] if argv is None else argv) or 0
        except Fail as e:
            print(e, file=sys.stderr)
            return 2 if isinstance(e, Usage) else 1
    wrapper.__name__ = fn.__name__
    return wrapper


def _last_error() -> str:
    return _read_buffer(NR["vuctl"], VUCTL_LASTERROR).decode(errors="replace")


def _fstypes() -> list[str]:
    return _read_buffer(NR["vuctl"], VUCTL_FSTYPES).decode().split()


@_main
def vu_insmod(argv):
    opts = parse_page("vu_insmod", argv, nargs=(1, None))
    for name in opts.args:
        ret = raw_syscall(NR["vu_insmod"], os.fsencode(name), int(opts.permanent))
        if ret == -errno.ENOENT:
            raise Fail("vu_insmod: %s: no such module" % name)
        if ret == -errno.EEXIST:
            raise Fail("vu_insmod: %s: module already loaded" % name)
        if ret == -errno.ENOEXEC:
            raise Fail("vu_insmod: %s: not a valid umvu module: %s" % (name, _last_error()))
        if ret == -errno.EPERM and _last_error():
            raise Fail("vu_insmod: %s" % _last_error())  # (it names the module)
        _check(ret, name)


@_main
def vu_rmmod(argv):
    opts = parse_page("vu_rmmod", argv, nargs=(1, None))
    for name in opts.args:
        ret = raw_syscall(NR["vu_rmmod"], os.fsencode(name))
        if ret == -errno.ENOENT:
            raise Fail("vu_rmmod: %s: module not loaded" % name)
        if ret == -errno.EBUSY:
            raise Fail("vu_rmmod: %s: module in use (mounted or open)" % name)
        _check(ret, name)


@_main
def vu_lsmod(argv):
    parse_page("vu_lsmod", argv)
    sys.stdout.write(_read_buffer(NR["vu_lsmod"]).decode())


@_main
def vumount(argv):
    opts = parse_page("vumount", argv, nargs=(2, 2))
    opts.source, opts.target = opts.args
    fstypes = _fstypes()
    fstype = opts.types
    if opts.bind or opts.rbind:
        fstype = fstype or "vufs"
    if opts.move:  # a mount moves: its type is what it was
        ret = raw_syscall(syscalls.number("mount"), os.fsencode(opts.source),
                          os.fsencode(opts.target), b"", MS_MOVE, b"")
        if ret < 0:
            raise Fail("vumount: " + (_last_error() or "%s: %s" % (opts.source,
                                                                  os.strerror(-ret))))
        return 0
    if not fstype:
        raise Fail("vumount: missing -t TYPE (loaded types: %s)" % (" ".join(fstypes) or "none"))
    if raw_syscall(NR["vuctl"], VUCTL_ACCEPTS, fstype.encode()) != 0:
        raise Fail("vumount: unknown file system type %r (loaded types: %s; load its "
                   "module with vu_insmod)" % (fstype, " ".join(fstypes) or "none"))
    flags = (MS_RDONLY if opts.read_only else 0) | (MS_BIND if opts.bind else 0) | \
        (MS_MOVE if opts.move else 0) | (MS_BIND | MS_REC if opts.rbind else 0)
    ret = raw_syscall(syscalls.number("mount"), os.fsencode(opts.source),
                      os.fsencode(opts.target), fstype.encode(), flags,
                      opts.options.encode())
    if ret < 0 and ret != -errno.ENOSYS:
        raise Fail("vumount: " + (_last_error() or "%s: %s" % (opts.target,
                                                              os.strerror(-ret))))


@_main
def vuumount(argv):
    opts = parse_page("vuumount", argv, nargs=(1, 1))
    opts.target = opts.args[0]
    _fstypes()  # fails clearly outside umvu
    ret = raw_syscall(syscalls.number("umount2"), os.fsencode(opts.target),
                      (1 if opts.force else 0) | (2 if opts.lazy else 0))
    if ret == -errno.EBUSY:
        raise Fail("vuumount: %s: target is busy (use -f to force)" % opts.target)
    if ret == -errno.EINVAL:  # (as umount(8) says it)
        raise Fail("vuumount: %s: not mounted" % opts.target)
    _check(ret, opts.target)


@_main
def vuname(argv):
    opts = parse_page("vuname", argv, nargs=(0, 1))
    if not opts.args:
        print(_read_buffer(NR["vuctl"], VUCTL_GETNAME).decode())
    else:
        _check(raw_syscall(NR["vuctl"], VUCTL_SETNAME, opts.args[0].encode()))


@_main
def vudebug(argv):
    """vudebug [TAGS|+TAGS|-TAGS]: show, set, add or remove debug tags (s: syscalls)."""
    if argv and argv[0] in ("-h", "--help"):
        print(help_text("vudebug"))
        return 0
    if len(argv) > 1:
        raise Fail("vudebug: one argument at most (usage: vudebug [TAGS|+TAGS|-TAGS])")
    if not argv:
        print(_read_buffer(NR["vuctl"], VUCTL_GETDEBUGTAGS).decode())
        return 0
    ret = raw_syscall(NR["vuctl"], VUCTL_SETDEBUGTAGS, argv[0].encode())
    if ret == -errno.EINVAL and _last_error():
        raise Fail("vudebug: %s" % _last_error())
    _check(ret)


LEVELS = {"error": 40, "warning": 30, "notice": 20, "info": 20, "debug": 10}


@_main
def vuctl(argv):
    usage = PAGES["vuctl"].synopsis
    opts = parse_page("vuctl", argv, nargs=(1, 2))
    opts.cmd = opts.args[0]
    wanted = {"ps": 0, "lsof": 0, "mounts": 0, "loglevel": 1, "debugtags": None}
    if opts.cmd not in wanted:
        raise Usage("vuctl: unknown command %s (usage: vuctl %s)" % (opts.cmd, usage))
    if wanted[opts.cmd] is not None and len(opts.args) - 1 != wanted[opts.cmd]:
        raise Usage("vuctl: %s takes %s (usage: vuctl %s)" % (
            opts.cmd, "a level" if wanted[opts.cmd] else "no argument", usage))
    if opts.cmd == "loglevel":
        opts.level = opts.args[1]
        if opts.level not in LEVELS:
            raise Usage("vuctl: unknown log level %s (%s)" % (opts.level,
                                                             ", ".join(sorted(LEVELS))))
    opts.tags = opts.args[1] if len(opts.args) > 1 else None
    if opts.cmd == "ps":
        sys.stdout.write(_read_buffer(NR["vuctl"], VUCTL_PS).decode(errors="replace"))
    elif opts.cmd == "lsof":
        sys.stdout.write(_read_buffer(NR["vuctl"], VUCTL_LSOF).decode(errors="replace"))
    elif opts.cmd == "mounts":
        sys.stdout.write(_read_buffer(NR["vuctl"], VUCTL_MOUNTS).decode(errors="replace"))
    elif opts.cmd == "loglevel":
        _check(raw_syscall(NR["vuctl"], VUCTL_SETLOGLEVEL, LEVELS[opts.level]))
    elif opts.cmd == "debugtags":
        return vudebug([opts.tags] if opts.tags else [])


UID_MODULES = ("unrealuidgid",)  # the modules that virtualize user and group ids


@_main
def vusu(argv):
    """vusu [-] [-l] [-m|-p] [-s SHELL] [-c CMD] [USER [ARG...]]: run a shell (or CMD) as a
    virtual user (root by default); needs a uid module (vu_insmod unrealuidgid)."""
    import pwd
    login = preserve = False
    shell = command = None
    rest = list(argv)
    user = None
    while rest:
        a = rest.pop(0)
        if a in ("-", "-l", "--login"):
            login = True
        elif a in ("-m", "-p", "--preserve-environment"):
            preserve = True
        elif a in ("-s", "--shell"):
            if not rest:
                raise Fail("vusu: %s needs a shell" % a)
            shell = rest.pop(0)
        elif a in ("-c", "--command"):
            if not rest:
                raise Fail("vusu: %s needs a command" % a)
            command = rest.pop(0)
        elif a in ("-h", "--help"):
            print(help_text("vusu"))
            return 0
        elif a.startswith("-") and len(a) > 1 and user is None:
            raise Fail("vusu: unknown option %s" % a)
        else:
            user = a
            break
    user = user or "root"
    loaded = [line.split("\t")[0] for line in _read_buffer(  # (outside umvu: says so)
        NR["vu_lsmod"]).decode().splitlines()]
    if not any(m in loaded for m in UID_MODULES):
        raise Fail("vusu: no uid module loaded (vu_insmod unrealuidgid): vusu changes "
                   "virtual ids only")
    try:
        pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        raise Fail("vusu: user %s does not exist" % user) from None
    try:
        groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
        os.setgroups(groups)
        os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
        os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
    except PermissionError:
        raise Fail("vusu: cannot change the user: load a uid module first "
                   "(vu_insmod unrealuidgid)") from None
    if shell is None:
        shell = (os.environ.get("SHELL") if preserve and not login else None) \
            or pw.pw_shell or "/bin/sh"
    if login:
        env = {k: v for k, v in os.environ.items() if k == "TERM"}
        env.update(HOME=pw.pw_dir, SHELL=shell, USER=pw.pw_name, LOGNAME=pw.pw_name,
                   PATH=os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"))
        try:
            os.chdir(pw.pw_dir)
        except OSError as e:
            print("vusu: warning: cannot change to %s: %s" % (pw.pw_dir, e.strerror),
                  file=sys.stderr)
    else:
        env = dict(os.environ)
        if not preserve:
            env.update(HOME=pw.pw_dir, SHELL=shell)
            if pw.pw_uid != 0:
                env.update(USER=pw.pw_name, LOGNAME=pw.pw_name)
    arg0 = "-" + os.path.basename(shell) if login else shell
    args = [arg0] + (["-c", command] if command is not None else []) + rest
    try:
        os.execve(shell, args, env)
    except OSError as e:
        raise Fail("vusu: cannot run %s: %s" % (shell, e.strerror)) from None


# address families by name (vustack -f), as VUOS's vustack names them
FAMILY_NAMES = (
    "unspec local inet ax25 ipx appletalk netrom bridge atmpvc x25 inet6 rose decnet "
    "netbeui security key netlink packet ash econet atmsvc rds sna irda pppox wanpipe "
    "llc ib mpls can tipc bluetooth iucv rxrpc isdn phonet ieee802154 caif alg nfc vsock "
    "kcm qipcrtr smc xdp mctp").split()
FAMILY_ALIASES = {"ip": ("inet", "inet6", "netlink", "packet"), "ipv4": ("inet",),
                  "ip4": ("inet",), "ipv6": ("inet6",), "ip6": ("inet6",), "unix": ("local",),
                  "bt": ("bluetooth",), "ir": ("irda",)}


def parse_families(text: str) -> list[int]:
    """vustack -f: a comma-separated list of family names, aliases or numbers."""
    out: list[int] = []
    for word in filter(None, text.split(",")):
        low = word.lower()
        names = FAMILY_ALIASES.get(low, (low,))
        for name in names:
            if name in FAMILY_NAMES[1:]:
                number = FAMILY_NAMES.index(name)
            else:
                try:
                    number = int(name, 0)
                except ValueError:
                    number = 0
                if not 0 < number < len(FAMILY_NAMES):
                    raise Usage("vustack: unknown protocol family %s" % word)
            if number not in out:
                out.append(number)
    return out


@_main
def vustack(argv):
    """vustack [-v] [-s] [-f FAMILIES] STACK CMD [ARG...]: run CMD with the network stack
    STACK (a file vumount -t vunetTYPE made) as its own for FAMILIES (names, aliases such
    as ip, ipv4, ipv6, or numbers, comma-separated; by default every family the stack
    has; -s: the families it supports, found by trying each); CMD's children and the
    programs it runs keep it."""
    from umvu.net import msocket_raw, SOCK_DEFAULT
    verbose = supported = False
    families: list[int] = []
    rest = list(argv)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        a = rest.pop(0)
        if a == "--":
            break
        if a in ("-h", "--help"):
            print(help_text("vustack"))
            return 0
        if a in ("-v", "--verbose"):
            verbose = True
        elif a in ("-s", "--supported"):
            supported = True
        elif a in ("-f", "--family", "--families") or a.startswith(("-f", "--families=",
                                                                    "--family=")):
            value = a.partition("=")[2] if a.startswith("--") else a[2:]
            if not value:
                if not rest:
                    raise Usage("vustack: %s needs a list of families" % a)
                value = rest.pop(0)
            families += [f for f in parse_families(value) if f not in families]
        else:
            raise Usage("vustack: unknown option %s (usage: vustack [-v] [-s] "
                        "[-f FAMILIES] STACK CMD [ARG...])" % a)
    if len(rest) < 2:
        raise Usage("vustack: %s (usage: vustack [-v] [-s] [-f FAMILIES] STACK CMD "
                    "[ARG...])" % ("missing STACK" if not rest else "missing CMD"))
    stack, command = rest[0], rest[1:]
    loaded = [line.split("\t")[0] for line in _read_buffer(  # (outside umvu: says so)
        NR["vu_lsmod"]).decode().splitlines()]
    if "vunet" not in loaded:
        raise Fail("vustack: no network module loaded (vu_insmod vunet)")
    try:
        os.stat(stack)
    except OSError as e:
        raise Fail("vustack: %s: %s" % (stack, e.strerror)) from None
    path = os.fsencode(stack)
    if supported:
        for family in range(1, len(FAMILY_NAMES)):
            ret = msocket_raw(path, family, -1, 0)
            if ret >= 0:
                os.close(ret)
            if ret >= 0 or ret == -errno.EINVAL:
                families.append(family) if family not in families else None
    if not families and not supported:
        ret = msocket_raw(path, 0, SOCK_DEFAULT, 0)
        if ret < 0:
            raise Fail("vustack: %s: %s" % (stack, os.strerror(-ret) if ret !=
                                             -errno.EOPNOTSUPP else "not a network stack"))
        if verbose:
            print("vustack: %s for every family it has" % stack, file=sys.stderr)
    for family in families:
        ret = msocket_raw(path, family, SOCK_DEFAULT, 0)
        if ret < 0:
            raise Fail("vustack: %s: %s" % (stack, os.strerror(-ret) if ret !=
                                             -errno.EOPNOTSUPP else "not a network stack"))
    if verbose and families:
        print("vustack: %s for %s" % (stack, " ".join(
            "%s(%d)" % (FAMILY_NAMES[f], f) for f in families)), file=sys.stderr)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print("vustack: cannot run %s: %s" % (command[0], e.strerror), file=sys.stderr)
        return 127 if e.errno == errno.ENOENT else 126


# the commands bin/ holds (each a link to bin/vucmd, named as the command)
COMMANDS = ("vu_insmod", "vu_rmmod", "vu_lsmod", "vumount", "vuumount", "vuname", "vudebug",
            "vuctl", "vusu", "vustack")
