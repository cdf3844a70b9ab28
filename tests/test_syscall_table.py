"""The declarative syscall table matches the kernel's x86_64 table."""
import random
import re
import struct
from pathlib import Path

import pytest

from umvu.core import syscalls
from umvu.core.tracer import build_filter

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


def _run_bpf(prog: bytes, nr: int, arch: int = 0xC000003E) -> int:
    """Classic BPF as the kernel runs a seccomp filter (the instructions umvu emits)."""
    ins = [struct.unpack_from("<HBBI", prog, 8 * i) for i in range(len(prog) // 8)]
    pc, acc = 0, 0
    for _ in range(len(ins) + 1):  # forward jumps only: at most one pass
        code, jt, jf, k = ins[pc]
        if code == 0x20:  # LD W ABS: seccomp_data.nr at 0, .arch at 4
            acc = {0: nr, 4: arch}[k]
            pc += 1
        elif code in (0x15, 0x35, 0x25):  # JEQ, JGE, JGT with K
            hit = {0x15: acc == k, 0x35: acc >= k, 0x25: acc > k}[code]
            pc += 1 + (jt if hit else jf)
        elif code == 0x06:  # RET K
            return k
        else:
            raise AssertionError("unexpected BPF instruction %#x" % code)
    raise AssertionError("no RET")


@pytest.mark.parametrize("seed", range(20))
def test_filter_traps_exactly_its_numbers(seed):
    """The module filter (a binary search over ranges of numbers) traces exactly the
    numbers of its bitmap, every foreign ABI and every number past the table."""
    rng = random.Random(seed)
    numbers = set()
    for _ in range(rng.randint(0, 80)):
        lo = rng.randrange(syscalls.NBITS)
        numbers |= set(range(lo, min(syscalls.NBITS, lo + rng.randint(1, 9))))
    # the numbers the C loop decides are sent to its listener (USER_NOTIF) instead:
    # some of the traced ones, in runs that split the traced ranges
    notif = {nr for nr in numbers if rng.random() < 0.4} if seed % 2 else set()
    prog = build_filter(syscalls.bitmap(numbers), syscalls.bitmap(notif) if notif else None)
    trace, allow, user_notif = 0x7FF00000, 0x7FFF0000, 0x7FC00000
    for nr in list(range(syscalls.NBITS)) + [0x40000000 + 1, 0xFFFFFFFF]:
        want = trace if nr in numbers or nr >= 0x40000000 else allow
        if nr in notif:
            want = user_notif
        assert _run_bpf(prog, nr) == want, nr
    assert _run_bpf(prog, 1, arch=0x40000003) == trace  # i386
