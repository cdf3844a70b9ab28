"""umvu/core/process.py: what threads share after clone (CLONE_FILES, CLONE_FS, CLONE_VM,
CLONE_THREAD, each with and without), exec (a shared fd table unshared, the fds the kernel
closed released), exit (one release per reference) and what Observers hear."""
import os
from collections import Counter

import pytest

from umvu.core.process import (CLONE_FILES, CLONE_FS, CLONE_THREAD, CLONE_VM, FsState,
                               Observers, ProcessTable)

THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_THREAD  # pthread_create


class VF:
    """An open file description as the table sees it: a reference count."""

    def __init__(self, name):
        self.name, self.refs = name, 0

    def __repr__(self):
        return "VF(%s)" % self.name


class Recorder:
    """A process table whose Observers record what they hear, and its releases."""

    def __init__(self):
        self.obs = Observers()
        self.counts = Counter()  # guest_fd -> sum of vfd_count deltas
        self.deltas = []
        self.added = []
        self.cwds = []
        self.went_virtual = []
        self.changed = []
        self.released = []
        self.obs.vfd_count = lambda fd, d: (self.counts.update({fd: d}),
                                            self.deltas.append((fd, d)))
        self.obs.vfd_added = lambda table, fd: self.added.append((table, fd))
        self.obs.virtual_cwds = self.cwds.append
        self.obs.cwd_went_virtual = self.went_virtual.append
        self.obs.data_changed = self.changed.append
        self.pt = ProcessTable(release=self.released.append, obs=self.obs)

    def open(self, t, fd, name=None):
        vf = VF(name or "fd%d" % fd)
        vf.refs += 1
        t.files.set(fd, vf)
        return vf


@pytest.fixture
def rec():
    return Recorder()


def test_the_initial_thread(rec):
    t = rec.pt.add_initial(10, cwd=b"/home")
    assert (t.tid, t.process.tgid, t.process.threads) == (10, 10, {10})
    assert (t.fs.cwd, t.fs.root, t.fs.kernel_cwd, t.fs.users) == (b"/home", b"/", True, 1)
    assert t.files.fds == {} and t.files.users == 1 and t.mem.scratch == {}
    assert rec.pt.get(10) is t and len(rec.pt) == 1 and rec.pt.get(11) is None
    old = os.umask(0o027)
    try:
        assert rec.pt.add_initial(12, cwd=b"/").fs.umask == 0o027  # the caller's umask
    finally:
        os.umask(old)
    assert os.umask(old) == old  # (left as it was)


@pytest.mark.parametrize("flags", [0, CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_THREAD | CLONE_VM,
                                   CLONE_FS | CLONE_FILES, THREAD_FLAGS])
def test_clone_shares_exactly_what_its_flags_say(rec, flags):
    parent = rec.pt.add_initial(10, cwd=b"/home")
    parent.mem.scratch[10] = 0x1000
    rec.open(parent, 3)
    parent.process.data["k"] = 1
    child = rec.pt.clone(10, 11, flags)
    assert rec.pt.get(11) is child and child.tid == 11
    assert (child.files is parent.files) == bool(flags & CLONE_FILES)
    assert (child.fs is parent.fs) == bool(flags & CLONE_FS)
    assert (child.mem is parent.mem) == bool(flags & CLONE_VM)
    assert (child.process is parent.process) == bool(flags & CLONE_THREAD)
    # what is not shared is a copy of the parent's
    assert child.files.fds == parent.files.fds
    assert (child.fs.cwd, child.fs.umask) == (parent.fs.cwd, parent.fs.umask)
    assert child.mem.scratch == {10: 0x1000}
    assert dict(child.process.data) == {"k": 1}
    if flags & CLONE_THREAD:
        assert child.process.threads == {10, 11} and child.process.tgid == 10
    else:
        assert child.process.threads == {11} and child.process.tgid == 11
        assert parent.process.threads == {10}


def test_an_unshared_copy_is_independent(rec):
    parent = rec.pt.add_initial(10, cwd=b"/home")
    rec.open(parent, 3)
    parent.process.data["k"] = 1
    child = rec.pt.clone(10, 11, 0)
    child.fs.cwd = b"/tmp"
    child.mem.scratch[11] = 0x2000
    child.files.pop(3)
    child.process.data["k"] = 2
    assert parent.fs.cwd == b"/home" and parent.mem.scratch == {}
    assert 3 in parent.files.fds and parent.process.data["k"] == 1


def test_shared_state_counts_its_users(rec):
    parent = rec.pt.add_initial(10, cwd=b"/")
    rec.pt.clone(10, 11, THREAD_FLAGS)
    rec.pt.clone(10, 12, CLONE_FILES)
    assert parent.fs.users == 2 and parent.files.users == 3
    rec.pt.exited(11)
    assert parent.fs.users == 1 and parent.files.users == 2
    assert parent.process.threads == {10}


def test_copying_an_fd_table_takes_a_reference_of_each_file(rec):
    parent = rec.pt.add_initial(10, cwd=b"/")
    a, b = rec.open(parent, 3), rec.open(parent, 4)
    rec.deltas.clear()
    rec.pt.clone(10, 11, 0)
    assert (a.refs, b.refs) == (2, 2)
    assert sorted(rec.deltas) == [(3, 1), (4, 1)]
    rec.deltas.clear()
    rec.pt.clone(10, 12, CLONE_FILES)  # shared: no new reference
    assert (a.refs, b.refs) == (2, 2) and rec.deltas == []


def test_exit_releases_once_per_reference(rec):
    parent = rec.pt.add_initial(10, cwd=b"/")
    a = rec.open(parent, 3)
    rec.pt.clone(10, 11, 0)               # its own copy: a second reference
    rec.pt.clone(10, 12, THREAD_FLAGS)    # the parent's table, shared
    assert a.refs == 2
    rec.pt.exited(12)
    assert rec.released == []             # the parent still holds the table
    rec.pt.exited(11)
    assert rec.released == [a]
    rec.pt.exited(10)
    assert rec.released == [a, a]         # as many releases as references
    assert len(rec.pt) == 0
    assert all(n == 0 for n in rec.counts.values())
    rec.pt.exited(10)                     # a tid already gone: nothing more
    assert rec.released == [a, a]


def test_exit_drops_the_threads_scratch_and_membership(rec):
    parent = rec.pt.add_initial(10, cwd=b"/")
    rec.pt.clone(10, 11, THREAD_FLAGS)
    parent.mem.scratch.update({10: 0x1000, 11: 0x2000})
    rec.pt.exited(11)
    assert parent.mem.scratch == {10: 0x1000} and parent.process.threads == {10}


# ------------------------------------------------------------------ Observers
def test_vfd_counts_balance_over_sets_pops_copies_and_exits(rec):
    t = rec.pt.add_initial(10, cwd=b"/")
    a = rec.open(t, 3)
    assert rec.deltas == [(3, 1)] and rec.added == [(t.files, 3)]
    t.files.set(3, a)                      # the same file again: nothing new
    assert rec.deltas == [(3, 1)] and len(rec.added) == 1
    b = VF("b")
    assert t.files.set(3, b) is a          # another file at the same fd: added, not counted
    assert rec.deltas == [(3, 1)] and rec.added[-1] == (t.files, 3)
    rec.open(t, 4)
    rec.pt.clone(10, 11, 0)
    rec.pt.clone(10, 12, CLONE_FILES)
    assert t.files.pop(4) is not None
    assert t.files.pop(4) is None          # not there: not counted twice
    assert t.files.pop(3, counted=False) is b  # counted out by the C loop already
    assert rec.counts == Counter({3: 2, 4: 1})
    rec.pt.exited(11)
    assert rec.counts == Counter({3: 1, 4: 0})
    for tid in (10, 12):
        rec.pt.exited(tid)
    assert rec.counts == Counter({3: 1, 4: 0})  # (the fd counted out by the C loop)
    assert sum(d for _, d in rec.deltas) == 1


def test_virtual_cwds_are_counted_across_clone_setter_and_exit(rec):
    t = rec.pt.add_initial(10, cwd=b"/")
    t.fs.kernel_cwd = False
    assert rec.cwds == [1] and rec.went_virtual == [t.fs]
    t.fs.kernel_cwd = False                # no change: nothing heard
    assert rec.cwds == [1] and len(rec.went_virtual) == 1
    rec.pt.clone(10, 11, CLONE_FS)         # shared: still one fs state
    assert rec.cwds == [1]
    c = rec.pt.clone(10, 12, 0)            # a copy with a virtual cwd
    assert rec.cwds == [1, 2] and not c.fs.kernel_cwd
    c.fs.kernel_cwd = True
    assert rec.cwds == [1, 2, 1]
    rec.pt.exited(11)
    assert rec.cwds == [1, 2, 1]           # the fs state still has a user
    rec.pt.exited(10)
    assert rec.cwds == [1, 2, 1, 0] and rec.obs.virtual == 0
    rec.pt.exited(12)
    assert rec.cwds[-1] == 0


def test_an_fs_state_made_virtual_is_counted_at_once():
    heard = []
    obs = Observers()
    obs.virtual_cwds = heard.append
    fs = FsState(obs, b"/mnt", kernel_cwd=False)
    assert heard == [1] and not fs.kernel_cwd
    fs.drop()
    assert heard == [1, 0]


def test_data_changes_are_heard(rec):
    t = rec.pt.add_initial(10, cwd=b"/")
    d = t.process.data
    d["a"] = 1
    d.update(b=2)
    assert d.setdefault("c", 3) == 3
    assert d.setdefault("c", 4) == 3       # no change: not heard
    assert d.pop("a") == 1
    del d["b"]
    assert rec.changed == [t.process] * 5
    assert dict(d) == {"c": 3}


def test_a_forked_childs_data_is_its_own_and_heard_as_its_own(rec):
    t = rec.pt.add_initial(10, cwd=b"/")
    t.process.data["x"] = [1]
    child = rec.pt.clone(10, 11, 0)
    rec.changed.clear()
    child.process.data["y"] = 2
    assert rec.changed == [child.process]
    assert "y" not in t.process.data
    assert child.process.data.process is child.process


def test_default_observers_listen_to_nothing():
    pt = ProcessTable()
    t = pt.add_initial(10, cwd=b"/")
    t.files.set(3, VF("x"))
    t.fs.kernel_cwd = False
    t.process.data["k"] = 1
    pt.clone(10, 11, 0)
    pt.exited(10)
    pt.exited(11)
    assert len(pt) == 0 and pt.obs.virtual == 0


def test_clone_keeps_the_filter_stack(rec):
    t = rec.pt.add_initial(10, cwd=b"/")
    t.process.filter_gen = 3
    t.process.fd_traps = {5: {"read"}}
    t.process.fd_pending = {6}
    child = rec.pt.clone(10, 11, 0)
    assert child.process.filter_gen == 3
    assert child.process.fd_traps == {5: {"read"}} and child.process.fd_pending == {6}
    child.process.fd_pending.add(7)
    assert t.process.fd_pending == {6}


# ------------------------------------------------------------------ exec
@pytest.fixture
def open_fds(tmp_path):
    """Two real fds of this process on files in tmp_path, and an fd number not open."""
    fds = [os.open(tmp_path / name, os.O_RDONLY | os.O_CREAT, 0o600) for name in ("a", "b")]
    closed = os.open(tmp_path / "c", os.O_RDONLY | os.O_CREAT, 0o600)
    os.close(closed)
    yield fds, closed
    for fd in fds:
        os.close(fd)


def test_exec_keeps_the_fds_the_kernel_kept_and_releases_the_others(rec, tmp_path, open_fds):
    (fa, fb), gone = open_fds
    rec.obs.placeholder_links = (os.path.realpath(tmp_path),)  # what kept fds link to
    pid = os.getpid()
    t = rec.pt.add_initial(pid, cwd=b"/")
    rec.open(t, fa)
    rec.open(t, fb)
    c = rec.open(t, gone)
    rec.pt.clone(pid, pid + 100000, THREAD_FLAGS)
    table = t.files
    t.mem.scratch[pid] = 0x1000
    after = rec.pt.exec(pid, pid)
    assert after is t and rec.pt.get(pid + 100000) is None
    assert t.files is table and table.users == 1  # shared by its own threads only
    assert set(t.files.fds) == {fa, fb}
    assert rec.released == [c]             # closed on exec: released once
    assert t.mem.scratch == {} and t.process.threads == {pid}
    assert rec.counts[gone] == 0 and rec.counts[fa] == 1


def test_exec_unshares_an_fd_table_shared_with_another_process(rec, tmp_path, open_fds):
    (fa, fb), gone = open_fds
    rec.obs.placeholder_links = (os.path.realpath(tmp_path),)
    pid = os.getpid()
    parent = rec.pt.add_initial(pid + 100000, cwd=b"/")
    a, c = rec.open(parent, fa), rec.open(parent, gone)
    child = rec.pt.clone(pid + 100000, pid, CLONE_FILES | CLONE_VM)  # vfork-like
    shared = parent.files
    assert child.files is shared and shared.users == 2
    rec.pt.exec(pid, pid)
    assert child.files is not shared and shared.users == 1
    assert set(child.files.fds) == {fa} and set(shared.fds) == {fa, gone}
    assert (a.refs, c.refs) == (2, 2)      # the copy's references (the caller drops them)
    assert rec.released == [c]             # the child's reference to the closed fd
    assert rec.counts == Counter({fa: 2, gone: 1})
    rec.pt.exited(pid)
    rec.pt.exited(pid + 100000)
    assert Counter(map(id, rec.released)) == Counter({id(a): 2, id(c): 2})


def test_exec_by_a_non_leader_thread_takes_the_leaders_tid(rec):
    pid = os.getpid()
    leader = rec.pt.add_initial(pid + 100000, cwd=b"/")
    worker = rec.pt.clone(pid + 100000, pid + 100001, THREAD_FLAGS)
    other = rec.pt.clone(pid + 100000, pid + 100002, THREAD_FLAGS)
    t = rec.pt.exec(pid + 100000, pid + 100001)
    assert t is worker and t.tid == pid + 100000 and t.process.tgid == pid + 100000
    assert rec.pt.get(pid + 100000) is worker
    assert rec.pt.get(pid + 100001) is None and rec.pt.get(pid + 100002) is None
    assert t.process.threads == {pid + 100000} and len(rec.pt) == 1
    assert leader.fs.users == 1 and other.files.users == 1  # the others are gone


def test_exec_of_an_unknown_thread_is_none(rec):
    assert rec.pt.exec(5, 6) is None


# ------------------------------------------------------------------ adopt
def test_adopted_threads_share_as_their_groups_say(rec):
    pid = os.getpid()
    known = rec.pt.add_initial(pid + 100000, cwd=b"/k")
    rows = [(pid, pid, 1, 1, 1),          # (tid, tgid, fs, files, vm group)
            (pid + 1, pid, 1, 1, 1),
            (pid + 2, pid + 2, 9, 3, 3),  # the known thread's groups
            (pid + 3, pid + 2, 1, 3, 3)]
    known_rows = [(pid + 100000, pid + 2, 9, 3, 3)]
    got = rec.pt.adopt(rows, umask=0o027, known_rows=known_rows, filter_gen=4)
    assert [t.tid for t in got] == [pid, pid + 1, pid + 2, pid + 3]
    t0, t1, t2, t3 = got
    assert t0.fs is t1.fs and t0.files is t1.files and t0.mem is t1.mem
    assert t0.process is t1.process and t0.process.threads == {pid, pid + 1}
    assert t0.fs.cwd == os.getcwdb() and t0.fs.umask == 0o027  # the kernel's cwd
    assert t0.process.filter_gen == 4 and t0.files.fds == {}
    assert t2.files is known.files and t3.files is known.files and known.files.users == 3
    assert t2.mem is known.mem and t2.process is known.process
    assert known.process.threads == {pid + 100000, pid + 2, pid + 3}
    assert t2.fs is known.fs and t3.fs is t0.fs and t0.fs.users == 3
    assert rec.pt.adopt(rows, umask=0o022) == []  # known by now


def test_every_change_of_module_data_is_heard(rec):
    t = rec.pt.add_initial(10, cwd=b"/")
    data = t.process.data
    data["a"] = 1
    data |= {"b": 2}
    data.update(c=3)
    data.setdefault("d", 4)
    data.pop("a")
    data.popitem()
    del data["b"]
    data.clear()
    assert rec.changed == [t.process] * 8
