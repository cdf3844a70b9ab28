"""``umvu [options] CMD [ARGS]``: run CMD under the hypervisor (options as VUOS umvu(1))."""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

import umvu
from umvu.core.hypervisor import Hypervisor

LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "notice": logging.INFO,
          "info": logging.INFO, "debug": logging.DEBUG}
SYSTEM_RC = "/etc/vurc"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="umvu", description="Run CMD in a partial virtual machine: its system calls "
        "and those of all its descendants go to the kernel or to umvu modules.")
    p.add_argument("-S", "--noseccomp", action="store_true",
                   help="no seccomp acceleration: every syscall stops in the hypervisor")
    p.add_argument("-d", "--debugtags", default="", metavar="TAGS",
                   help="debug tags (s: one strace-like line per intercepted syscall)")
    p.add_argument("-D", "--debugcolors", default="", metavar="COLORS",
                   help="accepted for VUOS compatibility (no colors are used)")
    p.add_argument("-l", "--loglevel", default="warning", metavar="LEVEL",
                   help="log level: error, warning, notice, info, debug or 0-7")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write log and debug output to FILE instead of stderr")
    p.add_argument("-x", "--nonesting", action="store_true",
                   help="disable module nesting (reserved: modules do not nest yet)")
    p.add_argument("-N", "--nonrc", action="store_true",
                   help="do not run the rc files (/etc/vurc, ~/.vurc)")
    p.add_argument("-f", "--rc", metavar="RCFILE",
                   help="run RCFILE instead of ~/.vurc at start")
    p.add_argument("-V", "--vu_name", default="", metavar="NAME", help="name of this view")
    p.add_argument("-P", "--pin", action="store_true",
                   help="run umvu and every guest on one CPU (--cpu N, else the first "
                        "this process may use): each ptrace stop then costs a context "
                        "switch on one CPU instead of a cross-CPU wake-up; off by default "
                        "because it serializes parallel work (make -j2)")
    p.add_argument("--cpu", type=int, metavar="N", help="the CPU for -P")
    p.add_argument("--version", action="version", version="umvu " + umvu.__version__)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD [ARGS]")
    return p


def _level(text: str) -> int:
    if text.isdigit():  # syslog numbering: 3 err, 4 warning, 5 notice, 6 info, 7 debug
        return {0: 50, 1: 50, 2: 50, 3: 40, 4: 30, 5: 20, 6: 20}.get(int(text), 10)
    if text.lower() not in LEVELS:
        raise ValueError(text)
    return LEVELS[text.lower()]


def setup_logging(output: str | None, level: int) -> None:
    handler = (logging.FileHandler(output) if output else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("umvu")
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def rc_files(opts) -> list[str]:
    if opts.nonrc:
        return []
    if opts.rc:
        return [opts.rc]
    home_rc = os.path.join(os.path.expanduser("~"), ".vurc")
    return [f for f in (SYSTEM_RC, home_rc) if os.path.isfile(f)]


def guest_argv(opts) -> list[bytes]:
    """CMD, preceded by a shell that sources the rc files when there are any."""
    cmd = [os.fsencode(a) for a in opts.cmd]
    rcs = rc_files(opts)
    if not rcs:
        return cmd
    script = "".join(". %s\n" % shlex.quote(rc) for rc in rcs) + 'exec "$@"\n'
    return [b"/bin/sh", b"-c", script.encode(), b"umvu-rc"] + cmd


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    if not opts.cmd:
        parser.print_usage(sys.stderr)
        print("umvu: missing CMD", file=sys.stderr)
        return 2
    if opts.cmd[0] == "--":
        opts.cmd = opts.cmd[1:]
    try:
        level = _level(opts.loglevel)
    except ValueError:
        print("umvu: bad log level %r (error, warning, notice, info, debug, 0-7)"
              % opts.loglevel, file=sys.stderr)
        return 2
    if "s" in opts.debugtags:
        level = min(level, logging.INFO)
    if opts.rc and not os.path.isfile(opts.rc):
        print("umvu: rc file %s: No such file" % opts.rc, file=sys.stderr)
        return 2
    try:
        setup_logging(opts.output, level)
    except OSError as e:
        print("umvu: cannot open %s: %s" % (opts.output, e.strerror), file=sys.stderr)
        return 2
    if opts.pin or opts.cpu is not None:
        cpu = opts.cpu if opts.cpu is not None else sorted(os.sched_getaffinity(0))[0]
        try:
            os.sched_setaffinity(0, {cpu})  # inherited by every guest
        except OSError as e:
            print("umvu: cannot pin to CPU %d: %s" % (cpu, e.strerror), file=sys.stderr)
            return 2
    hv = Hypervisor(noseccomp=opts.noseccomp, debugtags=opts.debugtags,
                    view_name=os.fsencode(opts.vu_name))
    try:
        return hv.run(guest_argv(opts))
    except OSError as e:
        print("umvu: cannot start %s: %s" % (opts.cmd[0], e.strerror), file=sys.stderr)
        return 126
