"""umvu's log: one line per message to stderr or to the -o file (the logging module
costs more to import than the rest of umvu's start, so umvu has this small one).

``log.error/warning/info/debug(fmt, *args)`` as logging's; ``log.exception`` adds the
traceback of the exception being handled."""
from __future__ import annotations

import sys

ERROR, WARNING, INFO, DEBUG = 40, 30, 20, 10


class Log:
    def __init__(self) -> None:
        self.level = WARNING
        self.out = sys.stderr

    def to(self, path: str | None) -> None:
        """Write to path (appended, line-buffered) or, for None, to stderr."""
        self.out = open(path, "a", buffering=1) if path else sys.stderr

    def setLevel(self, level: int) -> None:  # noqa: N802 (logging's name)
        self.level = level

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802
        return level >= self.level

    def _emit(self, level: int, fmt: str, args) -> None:
        if level >= self.level:
            try:
                self.out.write((fmt % args if args else fmt) + "\n")
                self.out.flush()
            except (OSError, ValueError):
                pass

    def error(self, fmt: str, *args) -> None:
        self._emit(ERROR, fmt, args)

    def warning(self, fmt: str, *args) -> None:
        self._emit(WARNING, fmt, args)

    def info(self, fmt: str, *args) -> None:
        self._emit(INFO, fmt, args)

    def debug(self, fmt: str, *args) -> None:
        self._emit(DEBUG, fmt, args)

    def exception(self, fmt: str, *args) -> None:
        import traceback
        self._emit(ERROR, (fmt % args if args else fmt) + "\n" +
                   traceback.format_exc().rstrip(), ())


log = Log()
