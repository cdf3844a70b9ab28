"""umvu/core/syscalls.py: rows by name and number, the filter bitmap, path_args."""
import pytest

from umvu.core import syscalls


@pytest.mark.parametrize("name, nr, choice", [
    ("read", 0, "fd"), ("open", 2, "path"), ("mmap", 9, "mmap"), ("ioctl", 16, "ioctl"),
    ("socket", 41, "socket"), ("clone", 56, "proc"), ("execve", 59, "proc"),
    ("rename", 82, "path2"), ("mount", 165, "mount"), ("umount2", 166, "umount"),
    ("getdents64", 217, "fd"), ("openat", 257, "path"), ("dup3", 292, "fd2"),
    ("statx", 332, "path"), ("clone3", 435, "proc"), ("openat2", 437, "path"),
    ("vu_insmod", -1, "virtual"), ("msocket", -5, "virtual"),
])
def test_rows_by_name_and_number(name, nr, choice):
    sc = syscalls.BY_NAME[name]
    assert (sc.nr, sc.name, sc.choice) == (nr, name, choice)
    assert syscalls.BY_NR[nr] is sc
    assert syscalls.number(name) == nr and syscalls.name_of(nr) == name


def test_unknown_numbers_and_names():
    assert syscalls.name_of(400) == "syscall_400"  # (a gap in the x86_64 table)
    assert syscalls.name_of(-99) == "syscall_-99"
    with pytest.raises(KeyError):
        syscalls.number("no_such_call")


@pytest.mark.parametrize("name, args, sizes", [
    ("read", ("fd", "buf_out", "size"), (None, 2, None)),
    ("write", ("fd", "buf_in", "size"), (None, 2, None)),
    ("getcwd", ("buf_out", "size"), (1, None)),
    ("readlinkat", ("dirfd", "path", "buf_out", "size"), (None, None, 3, None)),
    ("getpid", (), ()),
])
def test_argument_kinds_and_buffer_sizes(name, args, sizes):
    sc = syscalls.BY_NAME[name]
    assert (sc.args, sc.sizes) == (args, sizes)
    for i, size in enumerate(sc.sizes):
        if size is not None:
            assert sc.args[size] == "size"


@pytest.mark.parametrize("name, want", [
    ("open", (0,)), ("openat", (1,)), ("rename", (0, 1)), ("renameat2", (1, 3)),
    ("linkat", (1, 3)), ("symlink", (1,)), ("symlinkat", (2,)), ("mount", (1,)),
    ("umount2", (0,)), ("execveat", (1,)), ("read", ()), ("inotify_add_watch", (1,)),
    ("fanotify_mark", (4,)), ("msocket", (0,)),
])
def test_path_args(name, want):
    assert syscalls.BY_NAME[name].path_args() == want


def test_every_path_choice_has_its_paths():
    for sc in syscalls.BY_NR.values():
        n = len(sc.path_args())
        if sc.choice == "path":
            assert n >= 1, sc.name
        elif sc.choice == "path2":
            assert n == 2, sc.name


def test_bitmap_sets_one_bit_per_number():
    bits = syscalls.bitmap([0, 1, 9, 257, 511])
    assert len(bits) == syscalls.NBITS // 8 == 64
    assert bits[0] == 0b11 and bits[1] == 0b10  # 0, 1 and 9
    assert bits[257 // 8] == 1 << (257 % 8) and bits[63] == 0x80
    assert sum(bin(b).count("1") for b in bits) == 5
    for nr in range(syscalls.NBITS):
        assert bool(bits[nr // 8] >> (nr % 8) & 1) == (nr in (0, 1, 9, 257, 511))


def test_bitmap_ignores_numbers_out_of_range_and_repeats():
    assert syscalls.bitmap([-1, -5, 512, 10**6]) == bytes(64)
    assert syscalls.bitmap([3, 3, 3]) == syscalls.bitmap([3]) == syscalls.bitmap(iter([3]))
    assert syscalls.bitmap([]) == bytes(64)


def test_bitmap_of_the_path_calls_matches_the_rows():
    nrs = {sc.nr for sc in syscalls.BY_NR.values() if sc.choice == "path"}
    bits = syscalls.bitmap(nrs)
    assert {nr for nr in range(syscalls.NBITS) if bits[nr // 8] >> (nr % 8) & 1} == \
        {nr for nr in nrs if nr >= 0}
