"""The one source of umvu's command documentation: each command's options (what its
parser accepts), its ``--help`` and its man page (section 1, as VUOS's) come from here.

``help_text(name)`` is what ``NAME --help`` prints; ``troff(name)`` the man page
(setup.py writes them to share/man/man1 at install; ``python3 -m umvu.manual DIR``
writes them anywhere). Pure data: umvu's start imports it."""
from __future__ import annotations

import textwrap


class Opt:
    """One option: its spellings, the name the parser stores it under, its value's name
    (None: a flag) and what it does."""
    __slots__ = ("names", "dest", "metavar", "help", "kind", "default")

    def __init__(self, names, dest, metavar, help, kind=None, default=None):
        self.names, self.dest, self.metavar, self.help = tuple(names), dest, metavar, help
        self.kind = kind or ("flag" if metavar is None else "value")
        self.default = default if default is not None or self.kind != "flag" else False


class Page:
    __slots__ = ("name", "summary", "synopsis", "options", "description", "examples",
                 "see_also")

    def __init__(self, name, summary, synopsis, options=(), description=(), examples=(),
                 see_also=()):
        self.name, self.summary, self.synopsis = name, summary, synopsis
        self.options, self.description = list(options), list(description)
        self.examples, self.see_also = list(examples), list(see_also)

    def usage(self) -> str:
        return "%s %s" % (self.name, self.synopsis)


PIN_HELP = ("run umvu and every guest on one CPU (--cpu N, else the first this process may "
            "use): each ptrace stop then costs a context switch on one CPU instead of a "
            "cross-CPU wake-up; off by default because it serializes parallel work "
            "(make -j2) and the guest sees one CPU")
SPIN_HELP = ("microseconds the tracer polls for the next stop before it sleeps, while "
             "stops come that close together (a sleeping tracer's wake-up is a cross-CPU "
             "wake of a halted CPU, 20-25 us on a virtual machine); 0: never. Default: "
             "50 when umvu may run on more than one CPU, else 0")

PAGES: dict[str, Page] = {}


def _page(*args, **kw) -> Page:
    page = Page(*args, **kw)
    PAGES[page.name] = page
    return page


_page("umvu", "run a command in a partial virtual machine",
      "[OPTIONS] CMD [ARG...]",
      [Opt(("-S", "--noseccomp"), "noseccomp", None,
           "no seccomp acceleration: every syscall stops in the hypervisor"),
       Opt(("-d", "--debugtags"), "debugtags", "TAGS",
           "debug tags: s, one strace-like line per syscall umvu intercepts (without a "
           "module, only umvu's own calls); S, every syscall (as -S -d s)", default=""),
       Opt(("-D", "--debugcolors"), "debugcolors", "COLORS",
           "accepted for VUOS compatibility (no colors are used)", default=""),
       Opt(("-l", "--loglevel"), "loglevel", "LEVEL",
           "log level: error, warning, notice, info, debug or 0-7", default="warning"),
       Opt(("-o", "--output"), "output", "FILE",
           "write log and debug output to FILE instead of stderr"),
       Opt(("-x", "--nonesting"), "nonesting", None,
           "disable module nesting (reserved: modules do not nest yet)"),
       Opt(("-N", "--nonrc"), "nonrc", None, "do not run the rc files (/etc/vurc, ~/.vurc)"),
       Opt(("-f", "--rc"), "rc", "RCFILE", "run RCFILE instead of ~/.vurc at start"),
       Opt(("-V", "--vu_name"), "vu_name", "NAME", "name of this view", default=""),
       Opt(("-P", "--pin"), "pin", None, PIN_HELP),
       Opt(("--cpu",), "cpu", "N", "the CPU for -P", kind="int"),
       Opt(("--spin",), "spin", "US", SPIN_HELP, kind="int"),
       Opt(("--version",), "version", None, "print umvu's version and exit"),
       Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["umvu runs CMD under a ptrace and seccomp tracer that intercepts the system calls "
       "of CMD and of every process and thread it creates, and routes each one to the "
       "kernel or to a virtualizing module that claimed its path, fd, socket family, "
       "device or system call number. Modules are loaded inside the session with "
       "vu_insmod; what they mount (vumount) is seen by the session's processes only, "
       "with no root, no kernel FUSE and no change to the host.",
       "At start umvu runs /etc/vurc and ~/.vurc (or RCFILE) as shell scripts inside the "
       "session, unless -N. The exit status is CMD's, or 128+N when a signal N ended it.",
       "Without -S, calls no module is interested in run with no stop (seccomp); -d s "
       "then shows the calls umvu intercepts, and says so once at the start."],
      ["umvu bash", "umvu -o trace.log -d s make",
       "umvu bash -c 'vu_insmod vufuse; vumount -t vufuseext2 -o rw+ disk.img /mnt; ls /mnt'"],
      ["vu_insmod", "vumount", "vustack", "vusu", "strace"])

_page("vu_insmod", "load umvu modules", "[-p] MODULE...",
      [Opt(("-p", "--permanent"), "permanent", None,
           "accepted for VUOS compatibility (modules stay until vu_rmmod or the session's "
           "end)"),
       Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["Loads each MODULE into the umvu session: a name (vufuse, vufs, vudev, vunet, fuse, "
       "vubinfmt, vumisc, unreal, unrealuidgid, mountreal), a dotted Python name or the "
       "path of a Python file defining one umvu.api.Module subclass. In a session umvu runs as root, "
       "a module file is loaded only for root and only if root alone could have written "
       "it."],
      ["vu_insmod vufuse vudev"], ["vu_rmmod", "vu_lsmod", "umvu"])

_page("vu_rmmod", "unload umvu modules", "MODULE...",
      [Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["Unloads each MODULE; a module with mounts or open files is busy."],
      [], ["vu_insmod", "vu_lsmod"])

_page("vu_lsmod", "list the loaded umvu modules", "",
      [Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["Prints one line per loaded module: its name and what it serves."],
      [], ["vu_insmod", "vu_rmmod"])

_page("vumount", "mount a virtual file system, device or stack in the umvu session",
      "[-r|-w] [-B|-R|-M] [-t TYPE] [-o OPTS] SOURCE TARGET",
      [Opt(("-t", "--types"), "types", "TYPE",
           "the type (vufusememfs, vufuseext2, vufs, vudevpartx, vunetvdestack...): one "
           "a loaded module serves", default=""),
       Opt(("-o", "--options"), "options", "OPTS", "comma-separated mount options",
           default=""),
       Opt(("-r", "--read-only"), "read_only", None, "mount read-only (-o ro)"),
       Opt(("-w", "--rw", "--read-write"), "rw", None, "mount read-write (the default)"),
       Opt(("-B", "--bind"), "bind", None, "show SOURCE at TARGET (type vufs unless -t)"),
       Opt(("-R", "--rbind"), "rbind", None, "bind with the virtual mounts below SOURCE"),
       Opt(("-M", "--move"), "move", None, "move the virtual mount SOURCE to TARGET"),
       Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["Mounts SOURCE at TARGET in the session's view with the module that serves TYPE; "
       "mount(2) inside the session does the same. The mount shows in the session's "
       "/proc/mounts and nowhere else. Device and stack types (vudev*, vunet*) make their "
       "TARGET, which need not exist."],
      ["vumount -t vufuseext2 -o rw+ disk.img /mnt",
       "vumount -t vufs -o cow upper tree",
       "vumount -t vunetvdestack vde:///tmp/sw /dev/net/myvde"],
      ["vuumount", "vu_insmod", "umvu"])

_page("vuumount", "unmount a virtual mount of the umvu session", "[-f] [-l] TARGET",
      [Opt(("-f", "--force"), "force", None, "unmount even when busy"),
       Opt(("-l", "--lazy"), "lazy", None, "detach now, even when busy"),
       Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["Unmounts the virtual mount at TARGET (umount(2) inside the session does the "
       "same); a mount with open files or a working directory inside is busy."],
      [], ["vumount"])

_page("vuname", "show or set the name of the umvu view", "[NAME]",
      [Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["Without NAME prints the view's name (umvu -V), with NAME sets it."],
      [], ["umvu"])

_page("vudebug", "show or change umvu's debug tags at run time", "[TAGS|+TAGS|-TAGS]",
      [Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["Without an argument prints the session's debug tags; TAGS sets them, +TAGS adds "
       "and -TAGS removes some. s: one strace-like line per intercepted syscall (as "
       "umvu -d s)."],
      ["vudebug s"], ["umvu", "vuctl"])

_page("vuctl", "inspect and control the umvu session",
      "ps | lsof | mounts | loglevel LEVEL | debugtags [TAGS]",
      [Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["ps: the session's processes; lsof: their virtual files; mounts: the virtual "
       "mounts; loglevel: the log's level (error, warning, notice, info, debug); "
       "debugtags: as vudebug."],
      ["vuctl mounts"], ["vudebug", "umvu"])

_page("vusu", "run a shell as a virtual user", "[-] [-l] [-m|-p] [-s SHELL] [-c CMD] "
      "[USER [ARG...]]",
      [Opt(("-", "-l", "--login"), "login", None, "a login shell (a fresh environment)"),
       Opt(("-m", "-p", "--preserve-environment"), "preserve", None,
           "keep the environment"),
       Opt(("-s", "--shell"), "shell", "SHELL", "the shell to run"),
       Opt(("-c", "--command"), "command", "CMD", "run CMD with the shell"),
       Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["Runs a shell (or CMD) as USER (root by default) with no password: the ids are "
       "virtual ones of a uid module (vu_insmod unrealuidgid), never the kernel's."],
      ["vusu -c id"], ["umvu"])

_page("vustack", "run a command in a network stack of the umvu session",
      "[-v] [-s] [-f FAMILIES] STACK CMD [ARG...]",
      [Opt(("-f", "--family", "--families"), "families", "FAMILIES",
           "the address families STACK is to serve (comma-separated names such as inet, "
           "inet6, netlink, packet, aliases ip, ipv4, ipv6, or numbers; repeatable); by "
           "default every family the stack has"),
       Opt(("-s", "--supported"), "supported", None,
           "the families the stack supports, found by trying each"),
       Opt(("-v", "--verbose"), "verbose", None, "say which families STACK serves"),
       Opt(("-h", "--help"), "help", None, "print this help and exit")],
      ["Runs CMD with STACK (a file vumount -t vunetTYPE made: module vunet) as its "
       "network stack for FAMILIES: its socket() calls of those families, its "
       "children's and those of the programs they run are the stack's; every other "
       "process keeps the host's."],
      ["vustack /dev/net/myvde ip link", "vustack -f inet,inet6 /dev/net/myvde bash"],
      ["vumount", "umvu"])


def help_text(name: str) -> str:
    """What NAME --help prints: usage, summary, the options, and the description."""
    page = PAGES[name]
    lines = ["usage: " + page.usage(), "", page.summary[0].upper() + page.summary[1:] + "."]
    if page.options:
        lines += ["", "options:"]
        for opt in page.options:
            left = ", ".join(opt.names) + (" " + opt.metavar if opt.metavar else "")
            body = textwrap.wrap(opt.help, 60)
            if len(left) <= 20:
                lines.append("  %-20s  %s" % (left, body[0]))
            else:
                lines += ["  " + left, "  %-20s  %s" % ("", body[0])]
            lines += ["  %-20s  %s" % ("", more) for more in body[1:]]
    for para in page.description:
        lines += [""] + textwrap.wrap(para, 80)
    return "\n".join(lines)


def _esc(text: str) -> str:
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + out if out[:1] in (".", "'") else out


def troff(name: str, version: str = "") -> str:
    """NAME's man page (man(7) macros)."""
    page = PAGES[name]
    if not version:
        import umvu
        version = umvu.__version__
    out = ['.TH %s 1 "" "umvu %s" "umvu"' % (name.upper(), version), ".SH NAME",
           "%s \\- %s" % (_esc(name), _esc(page.summary)), ".SH SYNOPSIS",
           ".B %s" % _esc(name)]
    if page.synopsis:
        out.append(_esc(page.synopsis))
    out.append(".SH DESCRIPTION")
    for para in page.description:
        out += [".PP", _esc(para)]
    if page.options:
        out.append(".SH OPTIONS")
        for opt in page.options:
            names = ", ".join("\\fB%s\\fR" % _esc(n) for n in opt.names)
            if opt.metavar:
                names += " \\fI%s\\fR" % _esc(opt.metavar)
            out += [".TP", names, _esc(opt.help)]
    if page.examples:
        out.append(".SH EXAMPLES")
        for ex in page.examples:
            out += [".PP", ".nf", ".B %s" % _esc(ex), ".fi"]
    if page.see_also:
        out += [".SH SEE ALSO", ", ".join("\\fB%s\\fR(1)" % _esc(s) for s in page.see_also)]
    return "\n".join(out) + "\n"


def write_pages(directory: str) -> list[str]:
    """Every page as DIRECTORY/NAME.1; the paths."""
    import os
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name in PAGES:
        path = os.path.join(directory, name + ".1")
        with open(path, "w") as f:
            f.write(troff(name))
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys
    for p in write_pages(sys.argv[1] if len(sys.argv) > 1 else "man"):
        print(p)
