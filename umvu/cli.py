"""``umvu [options] CMD [ARGS]``: run CMD under the hypervisor (options as VUOS umvu(1))."""
from __future__ import annotations

import os
import sys

import umvu
from umvu.core.abi import DEBUG_TAGS
from umvu.core.launch import Launch
from umvu.manual import PAGES, help_text

# the log's levels (umvu.core.log)
ERROR, WARNING, INFO, DEBUG = 40, 30, 20, 10
LEVELS = {"error": ERROR, "warning": WARNING, "notice": INFO, "info": INFO, "debug": DEBUG}
SYSTEM_RC = "/etc/vurc"


# (short, long, dest, kind: flag/value/int, default, metavar, help): from the one source
# of the commands' options, help and man pages (umvu.manual)
OPTIONS = [(next((n for n in o.names if not n.startswith("--")), None),
            next((n for n in o.names if n.startswith("--")), None),
            o.dest, o.kind, o.default, o.metavar, o.help)
           for o in PAGES["umvu"].options if o.dest not in ("help", "version")]


def build_parser():
    import argparse
    p = argparse.ArgumentParser(prog="umvu", add_help=False, usage=PAGES["umvu"].usage())

    class Help(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(help_text("umvu"))
            parser.exit()
    p.add_argument("-h", "--help", nargs=0, action=Help)
    for short, long, dest, kind, default, metavar, text in OPTIONS:
        names = [n for n in (short, long) if n]
        if kind == "flag":
            p.add_argument(*names, dest=dest, action="store_true", help=text)
        else:
            p.add_argument(*names, dest=dest, default=default, metavar=metavar, help=text,
                           type=int if kind == "int" else str)
    p.add_argument("--version", action="version", version="umvu " + umvu.__version__)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD [ARGS]")
    return p


def defaults():
    import types
    return types.SimpleNamespace(**{o[2]: o[4] for o in OPTIONS})


def quick_parse(argv: list[str]):
    """The usual command lines (separate options, then CMD) without argparse, whose
    import costs more than the rest of umvu's start; None for anything else (help,
    version, joined or unknown options, errors): argparse then parses and reports."""
    opts = defaults()
    by_name = {n: o for o in OPTIONS for n in o[:2] if n}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        opt = by_name.get(arg)
        if opt is None:
            return None
        if opt[3] == "flag":
            setattr(opts, opt[2], True)
        else:
            if i + 1 >= len(argv):
                return None
            value = argv[i + 1]
            if opt[3] == "int":
                if not value.isdigit():
                    return None
                value = int(value)
            setattr(opts, opt[2], value)
            i += 1
        i += 1
    opts.cmd = argv[i:]
    return opts if opts.cmd else None


def _level(text: str) -> int:
    if text.isdigit():  # syslog numbering: 3 err, 4 warning, 5 notice, 6 info, 7 debug
        return {0: 50, 1: 50, 2: 50, 3: 40, 4: 30, 5: 20, 6: 20}.get(int(text), 10)
    if text.lower() not in LEVELS:
        raise ValueError(text)
    return LEVELS[text.lower()]


def setup_logging(output: str | None, level: int) -> None:
    from umvu.core.log import log
    log.to(output)
    log.setLevel(level)


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
    import shlex  # (re: only when there are rc files)
    script = "".join(". %s\n" % shlex.quote(rc) for rc in rcs) + 'exec "$@"\n'
    return [b"/bin/sh", b"-c", script.encode(), b"umvu-rc"] + cmd


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    opts = quick_parse(argv)
    if opts is None:
        parser = build_parser()
        opts = parser.parse_args(argv)
        if opts.cmd and opts.cmd[0] == "--":
            opts.cmd = opts.cmd[1:]
        if not opts.cmd:
            parser.print_usage(sys.stderr)
            print("umvu: missing CMD", file=sys.stderr)
            return 2
    try:
        level = _level(opts.loglevel)
    except ValueError:
        print("umvu: bad log level %r (error, warning, notice, info, debug, 0-7)"
              % opts.loglevel, file=sys.stderr)
        return 2
    unknown = sorted(set(opts.debugtags) - DEBUG_TAGS - {"S"})
    if unknown:
        print("umvu: unknown debug tag %r (known: %s)" % ("".join(unknown),
              "".join(sorted(DEBUG_TAGS | {"S"}))), file=sys.stderr)
        return 2
    if "S" in opts.debugtags:  # every call: as -S -d s
        opts.noseccomp = True
        opts.debugtags = opts.debugtags.replace("S", "") + "s"
    if "s" in opts.debugtags:
        level = min(level, INFO)
    if opts.rc and not os.path.isfile(opts.rc):
        print("umvu: rc file %s: No such file" % opts.rc, file=sys.stderr)
        return 2
    if opts.output:
        try:
            open(opts.output, "a").close()
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
    commands_on_path()
    # the guest starts now; the hypervisor only when an event needs it (launch.py)
    launch = Launch(opts.noseccomp, follow_in_c="s" not in opts.debugtags,
                    spin_ns=-1 if opts.spin is None else opts.spin * 1000)
    try:
        launch.start(guest_argv(opts))
    except OSError as e:
        print("umvu: cannot start %s: %s" % (opts.cmd[0], e.strerror), file=sys.stderr)
        return 126
    if not launch.follow():
        launch.restore()
        return launch.exit_code()
    return supervise(launch, opts, level)


def commands_on_path() -> None:
    """An installed umvu (pip, a venv not activated) run by its path: its vu_* commands
    beside it are put at the end of the guest's PATH when PATH has none of them."""
    import shutil
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    if shutil.which("vu_insmod") is None and os.access(os.path.join(here, "vu_insmod"),
                                                       os.X_OK):
        os.environ["PATH"] = os.environ.get("PATH", os.defpath) + os.pathsep + here


def supervise(launch: Launch, opts, level: int) -> int:
    """Build the hypervisor and run the guest to its end under it."""
    setup_logging(opts.output, level)
    from umvu.core.hypervisor import Hypervisor
    hv = Hypervisor(noseccomp=opts.noseccomp, debugtags=opts.debugtags,
                    view_name=os.fsencode(opts.vu_name), tracer=launch.tracer)
    return hv.run(launch)


def handed_over() -> int:
    """The umvu program (csrc/umvu_main.c) started the guest with no option and no rc
    file, followed it in C, and starts Python for the event now waiting: go on."""
    opts = defaults()
    return supervise(Launch.handed_over(), opts, _level(opts.loglevel))
