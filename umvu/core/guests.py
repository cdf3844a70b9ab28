"""The guests: threads the hypervisor follows, adopted from the C loop's tree when it
followed them alone (lazy following), their scratch memory, and the private host files
(placeholders, exec copies) the guests are given."""
from __future__ import annotations

import os

from umvu.core import credentials, syscalls

SCRATCH_SIZE = 16 * 4096  # a thread's scratch area in its guest's memory
NR_MMAP = syscalls.number("mmap")


class Guests:
    """Part of the Hypervisor: the guest threads and what they are given."""

    # ------------------------------------------------------------- lazy following
    def update_plain(self, t) -> None:
        """Tell the C loop whether t's clones may be followed without Python: nothing of
        t's that this table keeps would go to a child but what a fresh adoption from the
        kernel and the tree gives (current filter, no virtual fd, no virtual cwd, no
        module state). Going plain may come late (here, after an event); leaving it
        comes at once, before the guest runs on (on_vfd_added, on_fs_virtual,
        on_data_changed, new_filter_gen)."""
        p = t.process
        plain = (self.lazy and p.filter_gen == self.filter_gen and not p.data
                 and not t.files.fds and t.fs.kernel_cwd and t.fs.root == b"/"
                 and t.tid not in p.unsynced)  # (its clones are to be checked)
        if plain != t.plain:
            t.plain = plain
            self.tracer.set_plain(t.tid, plain)

    def set_lazy(self) -> None:
        """What the C loop follows alone: clones of plain threads, and the execs of
        unseen ones unless a module hooks every exec."""
        self.tracer.set_lazy(self.lazy, self.lazy and not self.exec_hooks)

    def _not_plain(self, threads) -> None:
        for t in threads:
            if t.plain:
                t.plain = False
                self.tracer.set_plain(t.tid, False)

    def sync_unseen(self) -> None:
        """Adopt the threads the C loop followed alone (their state is what the kernel
        and the tree say: see update_plain), before anything looks at every thread."""
        if not self.lazy:
            return
        rows = self.tracer.tree_rows(unseen_only=True)
        if rows:
            for t in self.procs.adopt(rows, None, self.tracer.tree_rows(), self.filter_gen):
                self.update_plain(t)

    def all_threads(self) -> list:
        """Every guest thread (the unseen ones adopted first)."""
        self.sync_unseen()
        return list(self.procs.threads.values())

    def known(self, tid: int):
        """The thread tid (adopted if the C loop followed it alone), or None."""
        t = self.procs.get(tid)
        if t is None:
            self.sync_unseen()
            t = self.procs.get(tid)
        return t

    def new_filter_gen(self) -> None:
        """A new filter every process must stack: the unseen threads are adopted with the
        generation they have, and no thread is plain until it has the new one."""
        self.sync_unseen()
        self.filter_gen += 1
        self.tracer.plain_reset()
        for t in self.procs.threads.values():
            t.plain = False

    def on_fs_virtual(self, fs) -> None:
        """fs's cwd went inside a virtual mount: a child must copy it."""
        self._not_plain(t for t in self.all_threads() if t.fs is fs)

    def on_data_changed(self, process) -> None:
        self._not_plain(self.procs.threads[tid] for tid in process.threads
                        if tid in self.procs.threads)

    # ------------------------------------------------------------- syscalls
    def thread(self, tid: int):
        t = self.known(tid)
        if t is None:  # a thread we missed: adopt it with the kernel's view
            t = self.procs.add_initial(tid, os.fsencode(os.readlink("/proc/%d/cwd" % tid)))
        return t

    def placeholder_dir(self) -> bytes:
        """An empty directory the guest opens in place of a module's directory."""
        if self._placeholder is None:
            path = os.path.join(self.private_dir(), "dir")
            os.mkdir(path, 0o555)
            self.procs.obs.placeholder_links += (path,)
            self._placeholder = os.fsencode(path)
        return self._placeholder

    def alias_of(self, host_dir: bytes) -> bytes:
        """A short path that stands for the directory host_dir (a symlink of umvu's
        under an unpredictable name, in a directory of its own others may search but not
        list, 0711): a unix socket path the kernel takes in 108 bytes. Every check of
        the path it stands for applies to whoever follows it. Dropped with
        drop_alias."""
        import secrets
        with credentials.own_ids():
            if self._alias_dir is None:
                import tempfile
                self._alias_dir = os.fsencode(tempfile.mkdtemp(prefix="umvu-at-"))
                os.chmod(self._alias_dir, 0o711)
            alias = os.path.join(self._alias_dir, secrets.token_hex(8).encode())
            os.symlink(host_dir, alias)
        return alias

    def drop_alias(self, alias: bytes) -> None:
        with credentials.own_ids():
            try:
                os.unlink(alias)
            except FileNotFoundError:
                pass

    def private_dir(self) -> str:
        """umvu's own host directory (exec copies, fifos, the placeholder directory):
        0700 under an unpredictable name, so no other user reaches what is in it."""
        if self._exec_dir is None:
            import tempfile
            with credentials.own_ids():  # (umvu's, whoever's call needs it first)
                self._exec_dir = tempfile.mkdtemp(prefix="umvu-")  # (0700, O_EXCL)
        return self._exec_dir

    def exec_copy(self, entry, rel: bytes, st) -> bytes:
        """A host copy of a virtual executable, readable and executable by the guest."""
        import hashlib
        self.private_dir()
        handle = self.call(entry.service, "open", rel, os.O_RDONLY, 0)
        try:
            data = bytearray()
            while True:
                chunk = self.call(entry.service, "pread", handle, 1 << 20, len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            self.call(entry.service, "close", handle)
        name = hashlib.sha256(entry.key + rel + bytes(data)).hexdigest()[:24]
        path = os.path.join(self._exec_dir, name)
        if not os.path.exists(path):
            tmp = "%s.%s" % (path, os.urandom(8).hex())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                         os.O_CLOEXEC, 0o700)  # the owner's only, as the directory
            with open(fd, "wb") as f:
                f.write(data)
            os.rename(tmp, path)
        return os.fsencode(path)

    # ------------------------------------------------------------- guest memory
    def scratch(self, t) -> int:
        """Guest address of this thread's scratch area (made at first use)."""
        addr = t.mem.scratch.get(t.tid)
        if addr is None:
            ret = self.tracer.inject(t.tid, NR_MMAP, 0, SCRATCH_SIZE, 3, 0x22,
                                     0xFFFFFFFFFFFFFFFF, 0)
            if -4096 < ret < 0:
                raise OSError(-ret, "cannot map a scratch area in the guest")
            addr = ret
            t.mem.scratch[t.tid] = addr
        return addr
