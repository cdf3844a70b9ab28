"""vunetnull: a stack with no network (``vumount -t vunetnull none STACK``).

Its families are IPv4, IPv6, netlink and packet: in a process that made it its default,
``socket()`` of any of them fails with EAFNOSUPPORT, as on a kernel built without them;
unix sockets (and every other family) stay the kernel's."""
import errno

from umvu.modules.vunet import STACK_FAMILIES


class Stack:
    families = STACK_FAMILIES

    def __init__(self, api, source: bytes, options: dict) -> None:
        pass

    def socket(self, domain: int, type_: int, protocol: int):
        raise OSError(errno.EAFNOSUPPORT, "no network in this stack")

    def netdev_socket(self):
        return False  # (no interface at all: netdevice ioctls answer ENODEV)

    def close(self) -> None:
        pass
