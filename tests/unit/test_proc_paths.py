"""umvu/core/vfs.py's /proc path checks (proc_rest, is_proc_link, is_proc_mounts), each
compared with the regular expression it stands for, on listed and on drawn paths."""
import re

import pytest
from hypothesis import example, given, settings, strategies as st

from umvu.core.vfs import is_proc_link, is_proc_mounts, proc_rest

SETTINGS = settings(database=None, derandomize=True, deadline=None, max_examples=250)
# (fullmatch: "$" alone would also accept a path ending with a newline)
LINK = re.compile(rb"^/proc/(?:self|thread-self|\d+)(?:/task/\d+)?/(?:fd/\d+|cwd|exe|root)$")
MOUNTS = re.compile(rb"^/proc/(?:(?:self|thread-self|\d+)(?:/task/\d+)?/)?(mounts|mountinfo)$")
REST = re.compile(rb"/proc/(?:self|thread-self|\d+)/(?:task/\d+/)?(.*)", re.S)


def rest_by_re(path):
    m = REST.fullmatch(path)
    return None if m is None else m.group(1)


COMPONENTS = ["proc", "self", "thread-self", "task", "fd", "cwd", "exe", "root", "mounts",
              "mountinfo", "1", "42", "007", "", "x", "fdx", "self2", "-1", "1a", "..", ".",
              "status", "\n", "\u0663"]  # (an Arabic-Indic digit: no ASCII digit)
component = st.sampled_from(COMPONENTS) | st.text("0123456789abcdefkmnorstu-/\n\u0663",
                                                  max_size=4)
drawn = st.builds(lambda lead, comps: (lead + "/".join(comps)).encode(),
                  st.sampled_from(["/proc/", "/proc/", "/", "", "//proc/", "/proc"]),
                  st.lists(component, max_size=6))
LISTED = [
    b"/proc/self/fd/3", b"/proc/1/cwd", b"/proc/thread-self/exe", b"/proc/22/task/23/root",
    b"/proc/self/task/1/fd/10", b"/proc/self/fd/", b"/proc/self/fd", b"/proc/self/fd/3/",
    b"/proc/self/fd/x", b"/proc/self/cwd/", b"/proc/self/cwd/x", b"/proc/selfx/cwd",
    b"/proc/-1/cwd", b"/proc//cwd", b"/proc/1//cwd", b"/proc/1/task/cwd",
    b"/proc/1/task/x/cwd", b"/proc/1/task/2/task/3/cwd", b"/proc/1/fd/03",
    b"/proc/1/cwd\n", b"/proc/1/fd/3\n", b"/proc/mounts", b"/proc/mountinfo",
    b"/proc/self/mounts", b"/proc/7/mountinfo", b"/proc/7/task/8/mounts",
    b"/proc/thread-self/mountinfo", b"/proc/mounts/", b"/proc/self/mounts/x",
    b"/proc/x/mounts", b"/proc//mounts", b"/proc/1/task//mounts", b"/proc", b"/proc/",
    b"/proc/1", b"/proc/1/", b"/proc/1/task", b"/proc/1/task/2", b"/proc/1/task/2/",
    b"/", b"", b"proc/1/cwd", b"/prox/1/cwd", b"//proc/1/cwd", b"/proc/1/mounts\n",
    b"/proc/1/task/2/fd/3", b"/proc/1/task/2/fd/", b"/proc/\xd9\xa3/cwd",
]


@pytest.mark.parametrize("path", LISTED)
def test_listed_paths(path):
    assert is_proc_link(path) == bool(LINK.fullmatch(path))
    assert is_proc_mounts(path) == bool(MOUNTS.fullmatch(path))
    assert proc_rest(path) == rest_by_re(path)


def test_the_listed_paths_reach_both_answers():
    assert sum(map(is_proc_link, LISTED)) >= 6 and sum(map(is_proc_mounts, LISTED)) >= 6
    assert sum(not is_proc_link(p) and not is_proc_mounts(p) for p in LISTED) >= 20


@SETTINGS
@example(b"/proc/1/task/2/exe")
@example(b"/proc/self/task/9/mountinfo")
@given(drawn)
def test_the_checks_are_their_regular_expressions(path):
    assert is_proc_link(path) == bool(LINK.fullmatch(path))
    assert is_proc_mounts(path) == bool(MOUNTS.fullmatch(path))


@SETTINGS
@given(drawn | st.binary(max_size=24).map(lambda b: b"/proc/" + b))
def test_proc_rest_is_what_follows_the_pid_or_tid_directory(path):
    assert proc_rest(path) == rest_by_re(path)


@pytest.mark.parametrize("path, rest", [
    (b"/proc/self/fd/3", b"fd/3"), (b"/proc/9/task/10/fd/3", b"fd/3"),
    (b"/proc/9/task/10", b"task/10"), (b"/proc/9/task/10/", b""), (b"/proc/9/", b""),
    (b"/proc/9", None), (b"/proc/mounts", None), (b"/sys/1/cwd", None),
    (b"/proc/thread-self/a/b/c", b"a/b/c"),
])
def test_proc_rest_examples(path, rest):
    assert proc_rest(path) == rest
