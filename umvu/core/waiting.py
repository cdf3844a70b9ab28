"""Calls that wait: a guest call a module serves may wait while umvu serves the others.

A module operation may be a coroutine (``async def``). One that finishes without really
waiting costs nothing more than a plain call. One that waits — on an fd (``wait_readable``),
a timer (``sleep``), an :class:`Event` another guest's call sets, or anything trio offers
(pyfuse3 file systems are trio code: locks, sockets, ``trio.sleep``) — keeps the call's
Python stack in a greenlet of its own, while the event loop goes on with every other guest:

- Until a call first waits, the event loop runs in a greenlet of its own, the *loop*
  greenlet, and serves each call on its own stack (a greenlet switch per event would
  cost 1.2 µs: docs/performance.md). When a call waits, its guest thread is parked (the
  call becomes pause(2) in the kernel, see ``Tracer.park``), the loop greenlet becomes
  that call's own (the loop's frames under the call return when the call is over), and
  the loop goes on afresh on trio, as below.
- From then on every syscall event Python serves runs in a *server* greenlet. When the
  call waits for the first time, the server greenlet becomes that call's own, and a new
  server serves the next events.
- The loop then runs on trio (imported at that moment, or when a module asks for it with
  ``need_trio``: pyfuse3 modules do at load): the loop is a trio task; a task that meets a
  waiting call becomes that call's *owner* (the wait was set up in its name, so it is the
  one to await it) and a new loop task takes over. The core's own waits (sleep, fds,
  Event) are awaited there with trio's equivalents.
- The wait is over: the owner interrupts the parked thread and takes its exit stop
  (``Tracer.unpark``); the call goes on at that stop and is answered at the entry stop of
  the guest's own call (``Tracer.reenter``), as any call is.
- A signal for the parked thread ends pause first: its exit stop comes before the wait is
  over, the owner is cancelled (trio.Cancelled reaches the module's code), and the guest's
  call gives -ERESTARTSYS: restarted (and served afresh) when the signal has no handler or
  SA_RESTART, EINTR otherwise — what a blocking read of a pipe does natively.
- The thread dies (SIGKILL, an exec of another thread): the owner is cancelled and
  nothing is left of the call.
- A call may ask to outlast the signals its process catches (``shield_signals``, as the
  kernel's FUSE waits for a daemon's reply): at the first such signal its
  ``on_signal`` runs (FUSE sends INTERRUPT), the signals the process catches are
  blocked in the thread while it waits on (so they stay pending), and the call is over
  only when its wait is — then the mask is given back and the signal delivered after
  the call's result. A signal it does not catch (a fatal one) still ends the wait, as a
  killable wait of the kernel.

Every ptrace call still comes from the tracer's thread: greenlets and trio tasks all run
on it.
"""
from __future__ import annotations

import errno
import sys
import time
import types

import struct

from umvu.core import credentials, errors, syscalls
from umvu.core.log import log
from umvu.core.process import status_fields

SIG_BLOCK, SIG_SETMASK = 0, 2
NR_RT_SIGPROCMASK = syscalls.number("rt_sigprocmask")
SIGSET_SLOT = 3 * 4096  # (two sigsets in the thread's scratch, past the path slots)
UNSTOPPABLE = (1 << 8) | (1 << 18)  # SIGKILL, SIGSTOP (bits signo - 1): never blocked



# ------------------------------------------------------------------ the core's waits
class Trap:
    """What a coroutine of the core's waits yields."""
    __slots__ = ()


class _Sleep(Trap):
    __slots__ = ("deadline",)

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline


class _Fd(Trap):
    __slots__ = ("fd", "write")

    def __init__(self, fd: int, write: bool) -> None:
        self.fd, self.write = fd, write


class _StartTrio(Trap):
    """The loop is to run on trio before the call goes on (need_trio)."""
    __slots__ = ()


class _EventWait(Trap):
    __slots__ = ("event",)

    def __init__(self, event: "Event") -> None:
        self.event = event


@types.coroutine
def _yield(trap):
    return (yield trap)


async def sleep(seconds: float) -> None:
    """Wait that long (the guest's call waits; umvu serves the others)."""
    await _yield(_Sleep(time.monotonic() + max(0.0, seconds)))


async def wait_readable(fd: int) -> None:
    """Wait until the host fd (one of umvu's own) is readable."""
    await _yield(_Fd(fd, False))


async def wait_writable(fd: int) -> None:
    """Wait until the host fd (one of umvu's own) is writable."""
    await _yield(_Fd(fd, True))


class Event:
    """Set once; ``await event.wait()`` waits until it is (another guest's call sets it)."""
    __slots__ = ("_set", "_trio")

    def __init__(self) -> None:
        self._set = False
        self._trio = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._trio is not None:
            self._trio.set()

    async def wait(self) -> None:
        if not self._set:
            await _yield(_EventWait(self))

    def _trio_event(self, trio):
        if self._trio is None:
            self._trio = trio.Event()
            if self._set:
                self._trio.set()
        return self._trio


class _LazyTrio(types.ModuleType):
    """sys.modules["trio"] until trio is used (lazy_trio): its first use imports trio,
    makes this module trio itself, and the loop run on trio (need_trio) before the
    caller goes on."""

    def __getattr__(self, name):
        real = _load_trio()
        need_trio()
        return getattr(real, name)


def _load_trio():
    """The real trio module (imported now if only the lazy one was there)."""
    mod = sys.modules.get("trio")
    if isinstance(mod, _LazyTrio):
        del sys.modules["trio"]
        import importlib
        real = importlib.import_module("trio")
        mod.__dict__.update(real.__dict__)  # who imported the lazy one has trio now
        return real
    import trio
    return trio


def lazy_trio() -> None:
    """Let ``import trio`` cost nothing until trio is used (pyfuse3 imports trio at once
    and uses it only where a file system awaits it: 60 ms of umvu's start otherwise);
    if trio is imported already, the loop is to run on it (need_trio)."""
    mod = sys.modules.get("trio")
    if mod is None:
        sys.modules["trio"] = _LazyTrio("trio")
    elif not isinstance(mod, _LazyTrio):
        need_trio()


def need_trio() -> None:
    """From now on the loop runs on trio, at once if this is a guest's call (so that
    trio code a module runs next finds itself in a trio task), else from the next event
    on."""
    waits = _current
    if isinstance(waits, _NoWaits) or waits.trio is not None:
        return
    waits.trio_wanted = True
    if getattr(waits._greenlet.getcurrent(), "call", None) is not None:
        drive(_yield(_StartTrio()))


def drive(coro, around=None):
    """Run the coroutine coro to its end and return its value. Where it waits, the
    calling server greenlet waits (see the module docstring); elsewhere a wait is EIO.
    around: its leave() is called before each wait, its enter() after."""
    value = exc = None
    while True:
        try:
            trap = coro.send(value) if exc is None else coro.throw(exc)
        except StopIteration as stop:
            return stop.value
        if around is not None:
            around.leave()
        caller = credentials.active  # (the other guests are served with umvu's own ids)
        if caller is not None:
            caller.leave()
        try:
            value, exc = _current.suspend(trap), None
        except BaseException as e:  # a cancellation, given to the coroutine
            value, exc = None, e
        finally:
            if caller is not None:
                caller.enter()
            if around is not None:
                around.enter()


def shield_signals(on_signal) -> None:
    """The calling guest's call, while it waits from now on, is not given up for a
    signal its process catches: on_signal() is called at the first one and the wait
    goes on (see the module docstring); None: given up again, as by default."""
    if isinstance(_current, _NoWaits):
        return
    me = _current._greenlet.getcurrent()
    if getattr(me, "call", None) is not None:
        me.shield = on_signal


def can_wait() -> bool:
    """Whether the running code serves a guest's call, which may wait (a file released
    at a process's exit is not one)."""
    if isinstance(_current, _NoWaits):
        return False
    return getattr(_current._greenlet.getcurrent(), "call", None) is not None


class _NoWaits:
    """Before the hypervisor runs: no call can wait."""

    @staticmethod
    def suspend(trap):
        raise OSError(errno.EIO, "a module waited outside a guest's call")


_current = _NoWaits()


# ------------------------------------------------------------------ the machinery
class Wait:
    """A server greenlet stopped to wait: for trap, in the name of waiter's call."""
    __slots__ = ("waiter", "trap")

    def __init__(self, waiter, trap) -> None:
        self.waiter, self.trap = waiter, trap


class Waiter:
    """One guest call that waits (its greenlet, its thread, its own syscall)."""
    __slots__ = ("greenlet", "tid", "nr", "args", "at_exit", "dead", "answered",
                 "finished", "scope", "saved_mask")

    def __init__(self, gr, tid: int, nr: int, args) -> None:
        self.greenlet, self.tid, self.nr, self.args = gr, tid, nr, args
        self.at_exit = False   # the thread is at the exit stop of its pause
        self.dead = False      # the thread is gone
        self.answered = False  # the call was answered (Waits.answering)
        self.finished = False  # its greenlet is over
        self.scope = None      # the owner's trio.CancelScope
        self.saved_mask = None  # the thread's signal mask while caught ones are held


class Waits:
    """Server greenlets, parked threads and their owners (one per hypervisor)."""

    def __init__(self, hv) -> None:
        global _current
        import greenlet
        self._greenlet = greenlet
        self.hv = hv
        self.tracer = hv.tracer
        self.server = None
        self.loop = None           # the plain loop's greenlet (run_plain) while it loops
        self.parked: dict[int, Waiter] = {}  # tid -> its waiting call
        self.count = 0             # calls waiting (their greenlets are alive)
        self.trio = None           # the trio module, once the loop runs on it
        self.trio_wanted = False   # a module asked for trio (need_trio)
        self.nursery = None
        _current = self

    # --------------------------------------------------------------- server side
    def run_plain(self, loop):
        """Run loop(), the event loop, in the loop greenlet: None when it is over, the
        Wait of the first call that waits (loop's frames are that call's from then on:
        loop returns, when the call is over, as soon as it finds that self.loop is no
        longer its greenlet)."""
        g = self.loop = self._greenlet.greenlet(loop)
        g.call = g.waiter = g.shield = None
        try:
            return g.switch()
        finally:
            if self.loop is g:
                self.loop = None

    def run(self, fn, tid: int, nr: int, args):
        """fn(tid, nr, args) on the loop greenlet's stack (run_plain) or in the server
        greenlet: None when it is over, a Wait when it waits in a server greenlet (the
        greenlet is the call's own from now on)."""
        me = self.loop
        if me is not None:
            me.call = (tid, nr, args)
            me.shield = None
            try:
                fn(tid, nr, args)
            except BaseException:
                if me.waiter is not None:
                    raise  # its owner's cancellation (the call was given up)
                log.exception("umvu: error serving a call of pid %d", tid)
            me.call = None
            return None
        s = self.server
        if s is None:
            s = self.server = self._greenlet.greenlet(self._serve)
        return s.switch(fn, tid, nr, args)

    def _serve(self, fn, tid, nr, args):
        me = self._greenlet.getcurrent()
        while True:
            me.call = (tid, nr, args)
            me.waiter = me.shield = None
            try:
                fn(tid, nr, args)
            except BaseException:
                if me is not self.server:
                    raise  # its owner's cancellation (the call was given up)
                log.exception("umvu: error serving a call of pid %d", tid)
            me.call = None
            if me is not self.server:
                return None  # it waited: its owner takes this as the end
            fn, tid, nr, args = me.parent.switch(None)

    def suspend(self, trap):
        """In a server greenlet: wait for trap (see drive)."""
        me = self._greenlet.getcurrent()
        call = getattr(me, "call", None)
        if call is None:
            raise OSError(errno.EIO, "a module waited outside a guest's call")
        if self.trio is None and not isinstance(trap, Trap):
            raise OSError(errno.EIO, "a module waited for %r before the loop ran on trio"
                          % (trap,))
        w = me.waiter
        if w is None:
            tid, nr, args = call
            self.tracer.park(tid)
            w = me.waiter = Waiter(me, tid, nr, args)
            self.parked[tid] = w
            self.count += 1
            if self.server is me:
                self.server = None  # the next events get a new server
            elif self.loop is me:
                self.loop = None    # the loop goes on afresh (run_plain)
        elif not w.dead:
            self.tracer.park(w.tid)
        w.at_exit = False
        hv = self.hv
        saved = hv.cur_tid, hv.stopped_tid
        try:
            return me.parent.switch(Wait(w, trap))
        finally:
            hv.cur_tid, hv.stopped_tid = saved

    def answering(self, tid: int) -> bool:
        """The call of tid served in this greenlet is about to be answered: a parked
        thread is put back at the entry stop of its call. False if it is gone."""
        w = self.parked.get(tid)
        if w is None or w.greenlet is not self._greenlet.getcurrent():
            return True
        if w.dead:
            return False
        if w.at_exit:
            self.tracer.reenter(tid, w.nr, w.args)
            w.at_exit = False
        w.answered = True
        return True

    def unparked_first(self, threads: list) -> list:
        """threads, those not waiting first: a process's filter is stacked by the first
        of its threads that stops, and stopping a waiting one gives up its wait."""
        if not self.parked:
            return threads
        return sorted(threads, key=lambda t: t.tid in self.parked)

    # --------------------------------------------------------------- loop side
    def exit_stop(self, tid: int) -> bool:
        """An exit stop of tid: True when it is a parked thread's (taken here)."""
        w = self.parked.get(tid)
        if w is None:
            return False
        w.at_exit = True
        if w.finished:  # given up while it slept (the session ends): restart the call
            self._release(w)
        elif w.scope is not None and not self._shielded(w):
            w.scope.cancel()  # a signal (or a ptrace interrupt): the wait is given up
        return True

    def _shielded(self, w: Waiter) -> bool:
        """At a signal's exit stop of a parked thread whose call shields it: True when
        the wait goes on (parked again, the caught signals held), False when a signal
        the process does not catch is pending (the wait is given up)."""
        on_signal = getattr(w.greenlet, "shield", None)
        if on_signal is None or w.dead:
            return False
        f = status_fields(w.tid, b"SigPnd", b"ShdPnd", b"SigBlk", b"SigCgt")
        try:
            pending = int(f[b"SigPnd"][0], 16) | int(f[b"ShdPnd"][0], 16)
            blocked, caught = int(f[b"SigBlk"][0], 16), int(f[b"SigCgt"][0], 16)
        except (KeyError, IndexError, ValueError):
            return False
        if pending & ~blocked & ~caught & ~UNSTOPPABLE:
            return False  # (fatal, or the kernel's own: a killable wait ends)
        try:
            if w.saved_mask is None and pending & ~blocked & caught:
                w.saved_mask = self._sigmask(w.tid, SIG_BLOCK, caught)
                try:
                    on_signal()
                except Exception:
                    log.exception("umvu: a shielded wait's on_signal failed")
            self.tracer.park(w.tid)
        except OSError:
            return False
        w.at_exit = False
        return True

    def _sigmask(self, tid: int, how: int, mask: int) -> int:
        """rt_sigprocmask(how, mask) made by tid at its stop: the mask it had."""
        t = self.hv.procs.get(tid)
        addr = self.hv.scratch(t) + SIGSET_SLOT
        self.tracer.poke(tid, addr, struct.pack("<Q", mask))
        ret = self.tracer.inject(tid, NR_RT_SIGPROCMASK, how, addr, addr + 8, 8)
        if ret >= 1 << 63:
            raise OSError(-(ret - (1 << 64)), "rt_sigprocmask")
        return struct.unpack("<Q", self.tracer.peek(tid, addr + 8, 8))[0]

    def _unshield(self, w: Waiter) -> None:
        """The wait is over: the thread's own signal mask again (the held signals are
        delivered after the call's result)."""
        if w.saved_mask is not None and not w.dead:
            mask, w.saved_mask = w.saved_mask, None
            try:
                self._sigmask(w.tid, SIG_SETMASK, mask)
            except OSError:
                pass

    def gone(self, tid: int) -> None:
        """tid exited (or an exec took its tid away)."""
        w = self.parked.get(tid)
        if w is None:
            return
        w.dead = True
        if w.finished:
            del self.parked[tid]
        elif w.scope is not None:
            w.scope.cancel()

    def _release(self, w: Waiter) -> None:
        if self.parked.get(w.tid) is w:
            del self.parked[w.tid]
        if w.at_exit:
            self._unshield(w)
        if not w.dead and w.at_exit and not w.answered:
            try:
                self.tracer.interrupted(w.tid, w.nr, w.args)
            except OSError:
                pass

    async def own(self, wait: Wait, scope) -> None:
        """Await the waits of wait.waiter's call to its end, in this task (it set the
        first one up) and under scope, this task's outermost cancel scope: entered
        before the module's code ran, the scopes that code opens (trio.sleep's...)
        are inside it, so cancelling it gives up the call."""
        w = wait.waiter
        trio = self.trio
        res = wait
        w.scope = scope
        if w.dead or w.at_exit:  # (a signal or the end came before this task ran)
            scope.cancel()
        try:
            while isinstance(res, Wait):
                value = exc = None
                try:
                    value = await self._await(res.trap)
                    # (no await from here on: this task may be inside the module's own
                    # cancel scopes, trio.sleep's expired one for instance)
                    if not w.at_exit and not w.dead:
                        try:
                            self.tracer.unpark(w.tid)
                            w.at_exit = True
                        except OSError:  # gone: its exit event comes
                            w.dead = True
                    if w.at_exit:
                        self._unshield(w)
                    if w.dead:
                        scope.cancel()
                        await trio.lowlevel.checkpoint()  # (raises Cancelled)
                except BaseException as e:
                    exc = e
                gr = w.greenlet
                res = gr.switch(value) if exc is None else gr.throw(exc)
        finally:
            w.finished = True
            self.count -= 1
            if w.dead or w.at_exit or w.answered:
                self._release(w)
            else:
                # still asleep in pause (the loop is ending): its exit stop restarts it
                try:
                    self.tracer.interrupt(w.tid)
                except OSError:
                    pass

    async def _await(self, trap):
        trio = self.trio
        if isinstance(trap, _Sleep):
            await trio.sleep(max(0.0, trap.deadline - time.monotonic()))
        elif isinstance(trap, _Fd):
            await (trio.lowlevel.wait_writable if trap.write
                   else trio.lowlevel.wait_readable)(trap.fd)
        elif isinstance(trap, _EventWait):
            await trap.event._trio_event(trio).wait()
        elif isinstance(trap, _StartTrio):
            pass
        else:
            return await _yield(trap)  # trio's own: this task is the one it was made for
        return None

    # --------------------------------------------------------------- trio
    def start_trio(self):
        """The trio module, the loop about to run on it."""
        if self.trio is None:
            trio = _load_trio()
            self.trio = trio
            errors.CANCELLATIONS = (trio.Cancelled,)
        return self.trio

    def run_trio(self, loop_task, first: Wait | None) -> None:
        """Run the event loop as trio tasks from now on (loop_task() is one; first: a
        call that waits already, given its owner)."""
        trio = self.start_trio()

        async def own_first():
            with trio.CancelScope() as scope:
                await self.own(first, scope)

        async def main():
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                if first is not None:
                    nursery.start_soon(own_first)
                nursery.start_soon(loop_task)  # (it cancels the nursery at the end)
        trio.run(main)
