"""umvu/core/waiting.py: drive() of coroutines that never wait (a plain call), of ones that
wait where no guest's call can (EIO), and Event."""
import errno
import sys

import pytest

from umvu.core import waiting
from umvu.core.waiting import Event, drive, need_trio, sleep, wait_readable, wait_writable


class Unreachable:
    """Stands for the waits machinery: a coroutine that never waits never reaches it."""

    def suspend(self, trap):
        raise AssertionError("suspended for %r" % (trap,))


@pytest.fixture
def no_hypervisor(monkeypatch):
    """As before the hypervisor runs (whatever other tests left)."""
    monkeypatch.setattr(waiting, "_current", waiting._NoWaits())


@pytest.fixture
def unreachable(monkeypatch):
    monkeypatch.setattr(waiting, "_current", Unreachable())
    # and no greenlet nor trio can be imported meanwhile
    for name in ("greenlet", "trio"):
        monkeypatch.setitem(sys.modules, name, None)


class Around:
    def __init__(self):
        self.log = []

    def leave(self):
        self.log.append("leave")

    def enter(self):
        self.log.append("enter")


def test_a_coroutine_that_never_waits_gives_its_value(unreachable):
    async def inner(x):
        return x * 2

    async def op(x):
        ev = Event()
        ev.set()
        await ev.wait()        # set already: no wait
        await sleep_nothing()
        return await inner(x) + 1

    async def sleep_nothing():
        return None

    around = Around()
    assert drive(op(20), around) == 41
    assert around.log == []    # nothing left, nothing entered
    assert drive(inner("ab")) == "abab"


def test_its_exception_comes_out_as_raised(unreachable):
    async def op():
        raise OSError(errno.ENOSPC, "full")

    with pytest.raises(OSError) as e:
        drive(op())
    assert e.value.errno == errno.ENOSPC


@pytest.mark.parametrize("wait", [lambda: sleep(0), lambda: sleep(10), lambda: wait_readable(0),
                                  lambda: wait_writable(1), lambda: Event().wait()])
def test_waiting_outside_a_guests_call_is_eio(no_hypervisor, wait):
    async def op():
        await wait()
        return "not reached"

    with pytest.raises(OSError) as e:
        drive(op())
    assert e.value.errno == errno.EIO and "outside a guest's call" in str(e.value)


def test_the_coroutine_sees_the_eio_where_it_waits(no_hypervisor):
    async def op():
        try:
            await sleep(1)
        except OSError as e:
            return "caught %d" % e.errno
        return "slept"

    around = Around()
    assert drive(op(), around) == "caught %d" % errno.EIO
    assert around.log == ["leave", "enter"]  # around the attempt to wait


def test_every_wait_is_eio_until_it_stops_waiting(no_hypervisor):
    async def op():
        failures = 0
        for _ in range(3):
            try:
                await wait_readable(0)
            except OSError:
                failures += 1
        return failures

    around = Around()
    assert drive(op(), around) == 3
    assert around.log == ["leave", "enter"] * 3


def test_waiting_in_the_hypervisor_but_not_in_a_guests_call_is_eio(monkeypatch):
    monkeypatch.setattr(waiting, "_current", waiting._current)  # restored afterwards
    hv = type("HV", (), {"tracer": object(), "cur_tid": 0, "stopped_tid": 0})()
    waits = waiting.Waits(hv)
    assert waiting._current is waits

    async def op():
        await sleep(0)

    with pytest.raises(OSError) as e:
        drive(op())
    assert e.value.errno == errno.EIO and waits.parked == {} and waits.count == 0


def test_need_trio_outside_the_hypervisor_does_nothing(no_hypervisor, monkeypatch):
    monkeypatch.setitem(sys.modules, "trio", None)
    assert need_trio() is None


def test_event_is_set_once_and_stays_set():
    ev = Event()
    assert ev.is_set() is False
    ev.set()
    assert ev.is_set() is True
    ev.set()
    assert ev.is_set() is True
    assert Event().is_set() is False  # each its own
