"""The declarative syscall table matches the kernel's x86_64 table."""
import re
from pathlib import Path

import pytest

from umvu.core import syscalls

UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")


def kernel_table():
    table = {}
    for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", UNISTD.read_text()):
        table[m.group(1)] = int(m.group(2))
    return table


def test_every_kernel_syscall_is_in_the_table_with_its_number():
    kt = kernel_table()
    assert len(kt) > 300
    for name, nr in kt.items():
        assert name in syscalls.BY_NAME, name
        assert syscalls.BY_NAME[name].nr == nr, name


def test_numbers_and_names_unique_and_rows_well_formed():
    nrs = [sc.nr for sc in syscalls.BY_NR.values()]
    assert len(nrs) == len(set(nrs))
    for sc in syscalls.BY_NR.values():
        assert sc.choice in syscalls.CHOICES
        for kind, size in zip(sc.args, sc.sizes):
            assert kind in syscalls.ARG_KINDS
            if size is not None:
                assert syscalls.BY_NR[sc.nr].args[size] == "size", sc.name
        if sc.choice in ("path", "path2"):
            assert "path" in sc.args, sc.name
        if sc.choice in ("fd", "fd2", "ioctl"):
            assert sc.args[0] == "fd" or sc.name == "close_range", sc.name
        assert len(sc.args) <= 6


def test_virtual_syscalls_use_numbers_linux_does_not():
    virtual = [sc for sc in syscalls.BY_NR.values() if sc.choice == "virtual"]
    assert {sc.name for sc in virtual} >= {"vu_insmod", "vu_rmmod", "vu_lsmod", "vuctl"}
    assert all(sc.nr < 0 for sc in virtual)


def test_families_share_choice():
    for fam in (("stat", "lstat", "newfstatat", "statx"), ("open", "openat", "openat2", "creat")):
        assert len({syscalls.BY_NAME[n].choice for n in fam}) == 1


def test_bitmap():
    bm = syscalls.bitmap([0, 9, 435])
    assert bm[0] == 1 and bm[1] == 2 and bm[435 // 8] == 1 << (435 % 8)
    assert sum(bin(b).count('1') for b in bm) == 3
    with pytest.raises(KeyError):
        syscalls.number("no_such_call")
