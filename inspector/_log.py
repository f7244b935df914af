"""The library's loggers, without importing `logging` until a record is due.

`import logging` (with `traceback`, `string`, `weakref` and `threading`
under it) was ~11 ms of a cold `inspector stack`, which logs nothing unless
something goes wrong (docs/DESIGN.md, "Round 5: the cold path"). A
`getLogger(name)` here is a stand-in for `logging.getLogger(name)`:

- `warning`/`error` always reach `logging` (imported then);
- `debug`/`info` reach it only when `logging` is already imported. When
  nobody has imported it, nobody has configured it either: the root logger
  is at its default level, WARNING, and would drop them anyway. Whoever
  wants them (the CLI's `--debug`, an application, pytest's caplog) has
  imported `logging` before.

The CLI configures logging (`basicConfig`) the first time a record is due,
through `configure_on_first_use`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from typing import Any

_configure: Callable[[], None] | None = None


def configure_on_first_use(configure: Callable[[], None] | None) -> None:
    """Call `configure` once, right before the first record reaches `logging`
    (None: forget a configuration that was never needed)."""
    global _configure
    _configure = configure


class Logger:
    """`logging.getLogger(name)`, fetched when a record is due."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _logger(self) -> logging.Logger:
        global _configure
        import logging

        if _configure is not None:
            configure, _configure = _configure, None
            configure()
        return logging.getLogger(self.name)

    def debug(self, msg: str, *args: object, **kwargs: Any) -> None:
        if "logging" in sys.modules:
            self._logger().debug(msg, *args, **kwargs)

    def info(self, msg: str, *args: object, **kwargs: Any) -> None:
        if "logging" in sys.modules:
            self._logger().info(msg, *args, **kwargs)

    def warning(self, msg: str, *args: object, **kwargs: Any) -> None:
        self._logger().warning(msg, *args, **kwargs)

    def error(self, msg: str, *args: object, **kwargs: Any) -> None:
        self._logger().error(msg, *args, **kwargs)


def getLogger(name: str) -> Logger:  # noqa: N802 (the name logging uses)
    return Logger(name)
