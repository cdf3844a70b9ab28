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


AT_FDCWD_REG = 0xFFFFFF9C  # -100 as the register holds it


@pytest.mark.parametrize("name, names", [
    ("renameat", ("dirfd", "path", "dirfd2", "path2")),
    ("fchownat", ("dirfd", "path", "uid", "gid", "flags")),
    ("sendfile", ("out_fd", "in_fd", "in_off", "size")),
    ("splice", ("in_fd", "in_off", "out_fd", "out_off", "size", "flags")),
    ("tee", ("in_fd", "out_fd", "size", "flags")),
    ("close_range", ("uint", "uint2", "flags")),
])
def test_arguments_are_named_by_kind_or_by_their_row(name, names):
    assert syscalls.BY_NAME[name].names() == names


def test_bound_arguments_are_the_raw_tuple_with_names():
    sc = syscalls.BY_NAME["fchownat"]
    a = sc.bind((AT_FDCWD_REG, 0x1000, 0xFFFFFFFF, 7, 0x100, 0))
    assert a == (AT_FDCWD_REG, 0x1000, 0xFFFFFFFF, 7, 0x100, 0)  # still the registers
    assert list(a)[2] == 0xFFFFFFFF and a[0] == AT_FDCWD_REG
    assert (a.dirfd, a.path, a.uid, a.gid, a.flags) == (-100, 0x1000, -1, 7, 0x100)
    assert a.syscall is sc
    assert type(sc.bind((0,) * 6)) is type(a)  # one class a row, made once


def test_offsets_are_signed_64_and_sizes_and_pointers_unsigned():
    a = syscalls.BY_NAME["pread64"].bind((3, 0xFFFF0000, 2**64 - 1, 2**64 - 5, 0, 0))
    assert (a.fd, a.buf_out, a.size, a.off) == (3, 0xFFFF0000, 2**64 - 1, -5)


def test_path_slots_name_each_path_and_its_dirfd():
    assert syscalls.BY_NAME["renameat2"].paths == ((1, 0), (3, 2))
    assert syscalls.BY_NAME["rename"].paths == ((0, None), (1, None))
    assert syscalls.BY_NAME["execveat"].paths == ((1, 0),)
    assert syscalls.BY_NAME["quotactl"].paths == ((1, None),)


def test_a_row_naming_an_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        syscalls._parse("1 write fd fd buf_in:2 length")
