"""Background: a call on a thread of its own, its value or its error handed back once."""

import threading

import pytest

from instructlake.background import Background


def test_result_returns_the_value_and_the_call_runs_once():
    calls = []
    job = Background("sum", lambda: calls.append(1) or 42)
    job.start()
    job.start()
    assert job.result() == 42 and job.result() == 42 and calls == [1]


def test_result_raises_the_calls_error_in_the_caller_and_wait_does_not():
    def fail():
        raise ValueError("merge lost")

    job = Background("fail", fail)
    job.start()
    job.wait()
    with pytest.raises(ValueError, match="merge lost"):
        job.result()


def test_result_starts_a_call_never_started_and_wait_on_it_returns_at_once():
    job = Background("late", lambda: threading.current_thread().name)
    job.wait()
    assert job.result() == "late"  # ran on its own thread, named for what it does
