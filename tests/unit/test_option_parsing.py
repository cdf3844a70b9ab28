"""Option parsing: mount options (umvu/api.py parse_options) and the vu_* commands'
command lines (umvu/commands.py parse)."""
import errno

import pytest

from umvu.api import parse_options
from umvu.commands import Usage, parse

KNOWN = {"size": int, "ro": bool, "name": str, "ratio": float}


def einval(options, known=KNOWN):
    with pytest.raises(OSError) as e:
        parse_options(options, known)
    assert e.value.errno == errno.EINVAL
    return str(e.value)


# ------------------------------------------------------------------ mount options
def test_known_options_with_their_types():
    assert parse_options("size=10,ro,name=x=y,ratio=0.5", KNOWN) == {
        "size": 10, "ro": True, "name": "x=y", "ratio": 0.5}


@pytest.mark.parametrize("options", ["", None, ",", ",,,"])
def test_no_options(options):
    assert parse_options(options, KNOWN) == {}


def test_empty_items_are_skipped_and_the_last_value_wins():
    assert parse_options(",size=1,,size=2,", KNOWN) == {"size": 2}
    assert parse_options("name=", KNOWN) == {"name": ""}


def test_a_boolean_takes_no_value():
    assert parse_options("ro", {"ro": bool}) == {"ro": True}
    for options in ("ro=1", "ro=", "ro=yes"):
        msg = einval(options)
        assert "'ro'" in msg and "no value" in msg


@pytest.mark.parametrize("options, name", [("size=x", "size"), ("size", "size"),
                                           ("size=", "size"), ("ratio=fast", "ratio")])
def test_a_bad_value_names_its_option(options, name):
    msg = einval(options)
    assert "bad value" in msg and repr(name) in msg


@pytest.mark.parametrize("options, name", [("nosuch", "nosuch"), ("ro,bogus=1", "bogus"),
                                           ("Size=1", "Size"), ("=1", "")])
def test_an_unknown_option_names_itself(options, name):
    msg = einval(options)
    assert "unknown" in msg and repr(name) in msg


# ------------------------------------------------------------------ command lines
MOUNT_FLAGS = {"-r": "read_only", "--read-only": "read_only", "-w": "rw", "--rw": "rw",
               "-B": "bind", "--bind": "bind"}
MOUNT_VALUED = {"-t": "types", "--types": "types", "-o": "options", "--options": "options"}
USAGE = "[-r|-w] [-B] [-t TYPE] [-o OPTS] SOURCE TARGET"


def vumount(*argv, nargs=(2, 2)):
    return parse("vumount", list(argv), USAGE, MOUNT_FLAGS, MOUNT_VALUED, nargs=nargs)


def usage_error(*argv, **kw):
    with pytest.raises(Usage) as e:
        vumount(*argv, **kw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("vumount: ") and USAGE in msg
    return msg


def test_defaults_and_operands():
    o = vumount("src", "dst")
    assert (o.read_only, o.rw, o.bind, o.types, o.options) == (False, False, False, "", "")
    assert o.args == ["src", "dst"]


def test_flags_short_and_long():
    o = vumount("-r", "src", "--bind", "dst")
    assert (o.read_only, o.bind, o.rw) == (True, True, False)
    assert o.args == ["src", "dst"]
    assert vumount("--rw", "a", "b").rw is True


@pytest.mark.parametrize("argv", [["-tvufs"], ["-t", "vufs"], ["--types=vufs"],
                                  ["--types", "vufs"]])
def test_a_valued_option_in_every_spelling(argv):
    o = vumount(*argv, "src", "dst")
    assert o.types == "vufs" and o.args == ["src", "dst"]


def test_values_may_look_like_options_or_hold_equal_signs():
    o = vumount("-o", "-r", "--options=a=1,b", "src", "dst")
    assert o.options == "a=1,b" and o.read_only is False  # the last one wins
    assert vumount("-t", "-r", "a", "b").types == "-r"
    assert vumount("--types=", "a", "b").types == ""


def test_combined_short_flags():
    o = vumount("-rw", "a", "b")
    assert (o.read_only, o.rw, o.bind) == (True, True, False)
    o = vumount("-Brr", "a", "b")
    assert (o.read_only, o.bind, o.rw) == (True, True, False)


def test_double_dash_ends_the_options():
    o = vumount("-r", "--", "-w", "--bind")
    assert o.read_only is True and o.rw is False and o.args == ["-w", "--bind"]
    assert vumount("--", "-h", "x").args == ["-h", "x"]  # no help after --


def test_a_lone_dash_is_an_operand():
    assert vumount("-", "dst").args == ["-", "dst"]


@pytest.mark.parametrize("argv, what", [
    ((), "missing operand"), (("a",), "missing operand"), (("a", "b", "c"), "too many operands"),
])
def test_wrong_operand_counts(argv, what):
    assert what in usage_error(*argv)


def test_operand_bounds():
    assert parse("p", [], "", nargs=(0, 0)).args == []
    assert parse("p", ["a"] * 7, "", nargs=(1, None)).args == ["a"] * 7
    with pytest.raises(Usage):
        parse("p", [], "", nargs=(1, None))
    with pytest.raises(Usage):
        parse("p", ["x"], "")  # no operand by default


@pytest.mark.parametrize("bad", ["-x", "--nosuch", "-rx", "--read-only=1", "-r1",
                                 "--bind=yes", "--type=vufs"])
def test_unknown_options(bad):
    msg = usage_error(bad, "a", "b")
    assert "unknown option %s " % bad in msg


def test_a_valued_option_at_the_end_needs_its_value():
    for opt in ("-t", "--types"):
        msg = usage_error("a", "b", opt)
        assert "option %s needs a value" % opt in msg


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_prints_the_usage_and_exits_0(capsys, flag):
    with pytest.raises(SystemExit) as e:
        vumount("a", flag, "--nosuch")  # (before anything after it is looked at)
    assert e.value.code == 0
    out = capsys.readouterr()
    # (a command's help is its page's: umvu.manual, the one source of help and man)
    from umvu.manual import help_text
    assert out.out == help_text("vumount") + "\n" and out.err == ""
    assert out.out.startswith("usage: vumount [-r|-w] [-B|-R|-M] [-t TYPE] [-o OPTS] "
                              "SOURCE TARGET\n")


def test_usage_is_a_one_line_failure():
    from umvu.commands import Fail
    assert issubclass(Usage, Fail)
