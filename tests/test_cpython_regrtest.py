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


def regrtest(mode):
    """{module: outcome} for one run of all MODULES in ``mode`` (cached)."""
    if mode not in _results:
        r = run(mode, [sys.executable, "-m", "test", "-j2", "--timeout", "900"] + MODULES,
                timeout=3000)
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
