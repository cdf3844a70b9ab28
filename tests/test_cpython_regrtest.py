"""CPython's own regression tests natively and under umvu / umvu -S: every module that
passes natively also passes under the hypervisor (issue: core, acceptance 7)."""
import re
import sys

import pytest

from conftest import run

MODULES = ["test_os", "test_posix", "test_subprocess", "test_signal", "test_threading",
           "test_select", "test_fcntl", "test_pty", "test_shutil", "test_tempfile",
           "test_fileio"]
_results = {}
NATIVE_EXTRA = ["test_glob"]  # run natively for the /unreal comparison below


def regrtest(mode):
    """{module: outcome} for one run of all MODULES in ``mode`` (cached)."""
    if mode not in _results:
        extra = NATIVE_EXTRA if mode == "native" else []
        r = run(mode, [sys.executable, "-m", "test", "-j2", "--timeout", "900"] + MODULES
                + extra, timeout=3000)
        out = r.stdout.decode(errors="replace")
        found = dict(re.findall(r"\] (test_\w+) (passed|failed|skipped|crashed|"
                                r"timed out|interrupted)", out))
        _results[mode] = (found, out[-3000:])
    return _results[mode]


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_regrtest_module(mode, module):
    native, native_tail = regrtest("native")
    assert native.get(module) == "passed", "must pass natively first:\n" + native_tail
    guest, tail = regrtest(mode)
    assert guest.get(module) == "passed", tail


UNREAL_MODULES = ["test_os", "test_shutil", "test_tempfile", "test_glob", "test_fileio"]
_unreal_results = {}


def regrtest_unreal(mode, tmpdir):
    """The same, with TMPDIR (and so the tests' files and cwd) under /unreal."""
    if mode not in _unreal_results:
        script = ("vu_insmod unreal && TMPDIR=/unreal%s exec %s -m test -j2 --timeout 900 %s"
                  % (tmpdir, sys.executable, " ".join(UNREAL_MODULES)))
        r = run(mode, ["bash", "-c", script], timeout=3000)
        out = r.stdout.decode(errors="replace")
        found = dict(re.findall(r"\] (test_\w+) (passed|failed|skipped|crashed|"
                                r"timed out|interrupted)", out))
        _unreal_results[mode] = (found, out[-3000:] + r.stderr.decode(errors="replace")[-2000:])
    return _unreal_results[mode]


@pytest.mark.parametrize("module", UNREAL_MODULES)
@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_regrtest_module_with_tmpdir_under_unreal(mode, module, tmp_path_factory):
    native, native_tail = regrtest("native")
    assert native.get(module) == "passed", native_tail
    guest, tail = regrtest_unreal(mode, tmp_path_factory.mktemp("unreal-tmp"))
    assert guest.get(module) == "passed", tail
