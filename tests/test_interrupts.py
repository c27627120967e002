"""What repeated signals do while a training run is stopping at a step boundary."""

from __future__ import annotations

import os
import signal

import pytest

from ja_pretrain.training.distributed import DistContext
from ja_pretrain.training.interrupts import StopAtStepBoundary
from ja_pretrain.utils.console import Terminated, raise_terminated


def test_a_repeated_sigterm_is_ignored_while_stopping_and_a_ctrl_c_acts_at_once():
    with StopAtStepBoundary() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # Slurm's, then torchrun's forwarded one: no exception
        assert stop.received == signal.SIGTERM and stop.agreed(DistContext()) == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(Terminated):
        StopAtStepBoundary.raise_for(signal.SIGTERM)


def test_a_second_ctrl_c_acts_at_once_and_so_does_sigterm_after_a_ctrl_c():
    for second in (signal.SIGINT, signal.SIGTERM):
        previous_term = signal.signal(signal.SIGTERM, raise_terminated)  # what run_guarded installs
        try:
            with StopAtStepBoundary() as stop:
                os.kill(os.getpid(), signal.SIGINT)
                assert stop.received == signal.SIGINT
                with pytest.raises(KeyboardInterrupt):  # Terminated is a KeyboardInterrupt too
                    os.kill(os.getpid(), second)
        finally:
            signal.signal(signal.SIGTERM, previous_term)


def test_the_handlers_are_restored_after_the_run():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopAtStepBoundary():
        pass
    assert {s: signal.getsignal(s) for s in before} == before
    assert StopAtStepBoundary().agreed(DistContext()) == 0
