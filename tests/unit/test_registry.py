"""umvu/core/registry.py: the responsibility table (longest prefix, newest among equals,
below_seq views, excepts holes, add/remove and on_change) and load_module_class."""
import errno
import textwrap

import pytest

from umvu.api import Module
from umvu.core.registry import Entry, Responsibility, load_module_class


class Svc:
    def __init__(self, excepts=()):
        self.excepts = excepts


def path_entry(key, excepts=()):
    return Entry("path", key, None, Svc(excepts))


@pytest.fixture
def table():
    return Responsibility()


def test_an_empty_table_is_the_kernels(table):
    assert table.lookup_path(b"/a/b") == (None, b"/a/b")
    assert not table.has_paths() and table.path_keys() == [] and table.mounts() == []


def test_the_longest_matching_prefix_wins(table):
    root, a, ab = (table.add(path_entry(k)) for k in (b"/", b"/a", b"/a/b"))
    assert table.lookup_path(b"/a/b/c") == (ab, b"/c")
    assert table.lookup_path(b"/a/b") == (ab, b"/")
    assert table.lookup_path(b"/a/bc") == (a, b"/bc")  # a prefix only at a "/"
    assert table.lookup_path(b"/a") == (a, b"/")
    assert table.lookup_path(b"/ab") == (root, b"/ab")
    assert table.lookup_path(b"/") == (root, b"/")
    assert table.path_keys() == [b"/a/b", b"/a", b"/"]


def test_a_prefix_matches_only_whole_components(table):
    e = table.add(path_entry(b"/mnt"))
    assert table.lookup_path(b"/mntx") == (None, b"/mntx")
    assert table.lookup_path(b"/mnt/x") == (e, b"/x")
    assert table.lookup_path(b"/mn") == (None, b"/mn")


def test_the_newest_among_equal_prefixes_wins(table):
    old = table.add(path_entry(b"/m"))
    new = table.add(path_entry(b"/m"))
    assert new.seq > old.seq
    assert table.lookup_path(b"/m/f") == (new, b"/f")
    table.remove(new)
    assert table.lookup_path(b"/m/f") == (old, b"/f")


def test_below_seq_sees_only_older_entries(table):
    root = table.add(path_entry(b"/"))
    m1 = table.add(path_entry(b"/m"))
    m2 = table.add(path_entry(b"/m"))
    deep = table.add(path_entry(b"/m/d"))
    assert table.lookup_path(b"/m/d/x", below_seq=deep.seq) == (m2, b"/d/x")
    assert table.lookup_path(b"/m/d/x", below_seq=m2.seq) == (m1, b"/d/x")
    assert table.lookup_path(b"/m/d/x", below_seq=m1.seq) == (root, b"/m/d/x")
    assert table.lookup_path(b"/m/d/x", below_seq=root.seq) == (None, b"/m/d/x")
    assert table.lookup_path(b"/m/d/x") == (deep, b"/x")


def test_excepts_are_holes_showing_what_is_below(table):
    root = table.add(path_entry(b"/"))
    m = table.add(path_entry(b"/m", excepts=(b"/m/hole", b"/m/other")))
    assert table.lookup_path(b"/m/hole") == (root, b"/m/hole")
    assert table.lookup_path(b"/m/hole/f") == (root, b"/m/hole/f")
    assert table.lookup_path(b"/m/other") == (root, b"/m/other")
    assert table.lookup_path(b"/m/holes") == (m, b"/holes")  # not below the hole
    assert table.lookup_path(b"/m") == (m, b"/")
    # a hole with nothing mounted below it is the kernel's
    table.remove(root)
    assert table.lookup_path(b"/m/hole/f") == (None, b"/m/hole/f")


def test_on_change_hears_of_path_entries_only(table):
    heard = []
    table.on_change = lambda: heard.append(table.path_keys())
    dev = table.add(Entry("chrdev", 0x501, None, Svc()))
    sc = table.add(Entry("syscall", 39, None, Svc()))
    assert heard == []
    e = table.add(path_entry(b"/x"))
    assert heard == [[b"/x"]]  # called once the entry is in place
    table.remove(dev)
    table.remove(sc)
    assert heard == [[b"/x"]]
    table.remove(e)
    assert heard == [[b"/x"], []]
    assert not table.has_paths()


def test_add_returns_the_entry_and_remove_forgets_it(table):
    e = path_entry(b"/x")
    assert table.add(e) is e
    assert table.mounts() == [e] and table.has_paths()
    table.remove(e)
    assert table.mounts() == [] and table.entries == []
    assert table.lookup_path(b"/x/y") == (None, b"/x/y")


def test_find_gives_the_newest_entry_of_a_kind_and_key(table):
    a = table.add(Entry("chrdev", 0x501, None, Svc()))
    b = table.add(Entry("chrdev", 0x501, None, Svc()))
    c = table.add(Entry("blkdev", 0x501, None, Svc()))
    assert table.find("chrdev", 0x501) is b
    assert table.find("blkdev", 0x501) is c
    assert table.find("chrdev", 0x502) is None
    table.remove(b)
    assert table.find("chrdev", 0x501) is a


def test_entries_are_numbered_in_creation_order():
    seqs = [path_entry(b"/").seq for _ in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


# ------------------------------------------------------------------ load_module_class
def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_a_file_defining_one_module_class(tmp_path):
    path = write(tmp_path, "one_mod.py", """
        from umvu.api import Module, Service
        class Helper(Service):
            pass
        class Mine(Module):
            name = "mine"
    """)
    cls = load_module_class(path)
    assert cls.__name__ == "Mine" and issubclass(cls, Module) and cls.name == "mine"


def test_imported_module_classes_do_not_count(tmp_path):
    path = write(tmp_path, "reexport.py", """
        from umvu.api import Module
        from umvu.modules.vumisc import VuMisc
        class Own(Module):
            pass
    """)
    cls = load_module_class(path)
    assert cls.__name__ == "Own" and cls.__module__ != "umvu.modules.vumisc"


@pytest.mark.parametrize("body, count", [
    ("x = 1\n", 0),
    ("from umvu.api import Module\n", 0),
    ("from umvu.api import Module\nclass A(Module): pass\nclass B(Module): pass\n", 2),
    ("from umvu.api import Module\nclass A(Module): pass\nclass B(A): pass\n", 2),
])
def test_none_or_two_module_classes_are_enoexec(tmp_path, body, count):
    path = write(tmp_path, "bad_%d.py" % count, body)
    with pytest.raises(OSError) as e:
        load_module_class(path)
    assert e.value.errno == errno.ENOEXEC
    assert path in str(e.value) and "%d module classes" % count in str(e.value)


def test_module_names_the_class_when_there_are_two(tmp_path):
    path = write(tmp_path, "two.py", """
        from umvu.api import Module
        class A(Module): pass
        class B(Module): pass
        MODULE = B
    """)
    assert load_module_class(path).__name__ == "B"


def test_a_missing_file_is_enoent(tmp_path):
    path = str(tmp_path / "nosuch.py")
    with pytest.raises(OSError) as e:
        load_module_class(path)
    assert e.value.errno == errno.ENOENT and path in str(e.value)
    with pytest.raises(OSError) as e:
        load_module_class(str(tmp_path))  # a directory is no module file
    assert e.value.errno == errno.ENOENT


def test_a_file_that_is_not_python_is_enoexec(tmp_path):
    path = write(tmp_path, "mod.txt", "from umvu.api import Module\nclass A(Module): pass\n")
    with pytest.raises(OSError) as e:
        load_module_class(path)
    assert e.value.errno == errno.ENOEXEC and path in str(e.value)


def test_an_unknown_short_name_is_enoent():
    with pytest.raises(OSError) as e:
        load_module_class("no_such_module_anywhere")
    assert e.value.errno == errno.ENOENT and "no_such_module_anywhere" in str(e.value)


@pytest.mark.parametrize("name", ["bad-name", "a b", "x;y", ""])
def test_a_malformed_name_is_einval(name):
    with pytest.raises(OSError) as e:
        load_module_class(name)
    assert e.value.errno == errno.EINVAL


def test_a_short_name_is_a_module_of_umvu_modules():
    cls = load_module_class("vumisc")
    assert issubclass(cls, Module) and cls.__module__ == "umvu.modules.vumisc"
    assert load_module_class("umvu.modules.vumisc") is cls


def test_a_module_file_may_use_dataclasses(tmp_path):
    """A file module is in sys.modules while it runs, as importlib puts it (dataclasses
    looks its module up there)."""
    path = write(tmp_path, "dc_mod.py", """
        from __future__ import annotations
        import dataclasses
        from typing import ClassVar
        from umvu.api import Module

        @dataclasses.dataclass
        class Options:
            kinds: ClassVar[tuple] = ()
            size: int = 0

        class DcModule(Module):
            name = "dc"
    """)
    cls = load_module_class(str(path))
    assert cls.__name__ == "DcModule" and issubclass(cls, Module)
