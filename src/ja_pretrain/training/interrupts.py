"""Ctrl-C and SIGTERM in a single-process training run: finish the step, checkpoint, then stop.

A signal that lands inside a step (between a gradient and the optimizer's update, say) would
leave weights and counters out of step with each other, so the handlers only record it; the
loop checks at each step boundary, saves a checkpoint there (the one a scheduled save at that
step would write, so `--do_continue` resumes exactly) and raises the interrupt. A second signal
acts at once. Distributed runs keep the default behaviour: ranks get signals at different
moments, and one rank stopping at a boundary alone would leave the others in a collective.
"""

from __future__ import annotations

import signal
import threading

from ja_pretrain.utils.console import Terminated

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopAtStepBoundary:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _record(self, signum, frame) -> None:
        self.received = signum
        self._restore()  # a second Ctrl-C or SIGTERM is not deferred

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> "StopAtStepBoundary":
        if self.enabled:
            self._previous = {s: signal.signal(s, self._record) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def raise_if_asked(self) -> None:
        if self.received == signal.SIGTERM:
            raise Terminated()
        if self.received is not None:
            raise KeyboardInterrupt()
