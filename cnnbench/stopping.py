"""Stopping a run on a signal: SIGINT (Ctrl-C) and SIGTERM (a cancelled CI job, ``timeout``, a batch scheduler) end a
run early, but leave it the time to write the report of every finished scenario, marked interrupted.

The handler raises KeyboardInterrupt at once, as Python's own Ctrl-C does. An exception raised in a signal handler
is lost when it lands in a garbage-collection callback, though. JAX registers one, and a SIGTERM was seen to vanish
there. So the handler also asks the caller to stop at its next safe point (``on_stop``; the plugin sets pytest's
``session.shouldstop``, checked before each item). While the final report is being written (:meth:`finishing`), a
signal is noted and not raised, so it cannot tear the report; a second one then acts at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
DEFAULTS: dict[int, Any] = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


def describe(signum: int) -> str:
    """How a report names the signal that stopped its run."""
    return "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name


class StopSignals:
    """Handles SIGINT and SIGTERM for one run, where the program running it left their default handlers (a program
    that handles them itself keeps its own) and it runs on the main thread. ``reason`` is what stopped the run."""

    def __init__(self, on_stop: Callable[[str], None]) -> None:
        self.on_stop = on_stop
        self.reason: str | None = None
        on_main = threading.current_thread() is threading.main_thread()
        self.mine = [s for s, default in DEFAULTS.items() if on_main and signal.getsignal(s) is default]
        self._handle(self._stop)

    def _handle(self, handler: Any) -> None:
        for signum in self.mine:
            signal.signal(signum, handler if handler is not None else DEFAULTS[signum])

    def _stop(self, signum: int, frame: Any) -> None:
        self.restore()  # a second signal acts at once
        self.reason = describe(signum)
        self.on_stop(self.reason)
        raise KeyboardInterrupt

    def finishing(self) -> None:
        """The run writes its report from now on: a signal is noted, not raised, and a second one acts at once."""
        self._handle(self._note)

    def _note(self, signum: int, frame: Any) -> None:
        self.restore()
        log.warning(f"{describe(signum)} while the report is being written: finishing it first; send it again to stop "
                    "at once")  # fmt: skip

    def restore(self) -> None:
        """The default handlers back."""
        self._handle(None)
