"""The harness itself: the watchdog catches a hang, the contract check catches untyped errors
and messages that do not name the input. (Its own cases are removed from the counts.)"""

from __future__ import annotations

import os
import time

import pytest
from fuzzkit import BROKEN, TALLY, Hang, case, count, format_report

from preproc.errors import ConfigError, ImageNotFoundError

KIND = "harness/self-test"


@pytest.fixture(autouse=True)
def _forget_own_cases():
    yield
    TALLY.pop(KIND, None)
    BROKEN.pop(KIND, None)


def test_watchdog_turns_a_hang_into_a_failure():
    t0 = time.perf_counter()
    with pytest.raises(Hang), case(KIND, seconds=0.3):
        time.sleep(30)
    assert time.perf_counter() - t0 < 10
    assert TALLY[KIND]["broken"] == 1


def test_watchdog_interrupts_a_blocking_system_call(tmp_path):
    """open() of a FIFO nobody writes to blocks in the kernel; SIGALRM interrupts it."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(Hang), case(KIND, seconds=0.3):
        open(fifo, "rb")  # noqa: SIM115 - it never returns


def test_an_untyped_exception_breaks_the_contract():
    with pytest.raises(ZeroDivisionError), case(KIND):
        1 / 0  # noqa: B018
    assert TALLY[KIND]["broken"] == 1


def test_a_message_must_name_the_input():
    with pytest.raises(AssertionError, match="does not name the input"), case(KIND, names=["/the/input.png"]):
        raise ImageNotFoundError("image file not found")
    with case(KIND, names=["/the/input.png"]) as c:
        raise ImageNotFoundError("image file not found: '/the/input.png'")
    assert isinstance(c.error, ImageNotFoundError)


def test_the_expected_error_class_is_enforced():
    with pytest.raises(AssertionError, match="expected"), case(KIND, expect=ConfigError):
        raise ImageNotFoundError("x")


def test_counts_and_report():
    with case(KIND) as c:
        c.result = 1
    count(KIND, "error")
    assert TALLY[KIND]["tried"] == 2 and TALLY[KIND]["result"] == 1 and TALLY[KIND]["error"] == 1
    assert KIND in format_report()
