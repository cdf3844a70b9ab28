"""vunetreal: the host's own stack again (``vumount -t vunetreal none STACK``), for
layering (a process in another stack uses it by msocket or vustack) and for tests.

Its families are IPv4, IPv6, netlink and packet; each socket is the guest's own call,
made by the kernel in the host's network namespace."""
from umvu.modules.vunet import STACK_FAMILIES


class Stack:
    families = STACK_FAMILIES

    def __init__(self, api, source: bytes, options: dict) -> None:
        pass

    def socket(self, domain: int, type_: int, protocol: int):
        return None  # (the kernel's: the guest's call, as it is or made from msocket's)

    def netdev_socket(self):
        return None  # (the host's: the kernel answers)

    def close(self) -> None:
        pass
