"""vunetnull: a stack with no network (``vumount -t vunetnull none STACK``).

Its families are IPv4, IPv6, netlink and packet: in a process that made it its default,
``socket()`` of any of them fails with EAFNOSUPPORT, as on a kernel built without them;
unix sockets (and every other family) stay the kernel's."""
import errno
import socket

FAMILIES = frozenset((socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK, socket.AF_PACKET))


class Stack:
    families = FAMILIES

    def __init__(self, api, source: bytes, options: dict) -> None:
        pass

    def socket(self, domain: int, type_: int, protocol: int):
        raise OSError(errno.EAFNOSUPPORT, "no network in this stack")

    def netdev_socket(self):
        return False  # (no interface at all: netdevice ioctls answer ENODEV)

    def close(self) -> None:
        pass
