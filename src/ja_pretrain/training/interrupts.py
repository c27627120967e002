"""Ctrl-C and SIGTERM during training: every rank finishes the step, one checkpoint, then stop.

A signal that lands inside a step (between a gradient and the optimizer's update, say) would
leave weights and counters out of step with each other, so the handlers only record it; the
loop asks at each step boundary whether any rank got one (`agreed`, a one-number reduction over
ranks, so all of them stop after the same step even when the signal reached only some, or
reached them at different moments), saves a checkpoint there (the one a scheduled save at that
step would write, so `--do_continue` resumes exactly) and raises the interrupt.

After the first signal, a Ctrl-C acts at once (someone at the terminal does not want to wait),
and so does a SIGTERM that follows a Ctrl-C (the pipeline's way of insisting). A SIGTERM that
follows a SIGTERM does not: Slurm signals every process of a job step and torchrun forwards the
signal it got, so a worker often receives the same stop twice; the scheduler's SIGKILL after
its grace period is the hard stop.
"""

from __future__ import annotations

import signal
import threading

from ja_pretrain.training.distributed import DistContext, max_over_ranks
from ja_pretrain.utils.console import Terminated

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopAtStepBoundary:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _record(self, signum, frame) -> None:
        if self.received is not None:
            return  # a SIGTERM after a SIGTERM (see the module's docstring)
        self.received = signum
        signal.signal(signal.SIGINT, self._previous[signal.SIGINT])
        if signum != signal.SIGTERM:
            signal.signal(signal.SIGTERM, self._previous[signal.SIGTERM])

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> "StopAtStepBoundary":
        if self.enabled:
            self._previous = {s: signal.getsignal(s) for s in SIGNALS}
            for s in SIGNALS:
                signal.signal(s, self._record)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def agreed(self, ctx: DistContext) -> int:
        """The signal every rank stops for after this step (0: none). A collective in a
        distributed run: every rank calls it at every step boundary. SIGTERM wins over SIGINT."""
        return max_over_ranks(self.received or 0, ctx)

    @staticmethod
    def raise_for(signum: int) -> None:
        if signum == signal.SIGTERM:
            raise Terminated()
        if signum:
            raise KeyboardInterrupt()
