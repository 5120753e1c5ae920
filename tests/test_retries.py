"""Storage calls ride out brief outages: only unavailability is retried, with backoff, and
within the retry budget (skyhook.retry-time); past it a clear StoreUnavailableError.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import dask
import pytest
from reliability_support import SAMPLE_PAYLOADS, sample_table

from skyhook_dask.exceptions import (
    ChecksumError,
    ObjectNotFoundError,
    QueryError,
    SkyhookError,
    StoreUnavailableError,
)
from skyhook_dask.formats.objects import write_object
from skyhook_dask.formats.protocol import decode_result
from skyhook_dask.retry import RetryPolicy, call_with_retries
from skyhook_dask.runtime.calls import call_class
from skyhook_dask.storage.memory import MemoryStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _flaky(failures: int, cost: float, clock: FakeClock) -> Callable[[], str]:
    calls = {"n": 0}

    def operation() -> str:
        calls["n"] += 1
        clock.now += cost
        if calls["n"] <= failures:
            raise StoreUnavailableError(f"OSD restarting (call {calls['n']})")
        return f"done after {calls['n']} calls"

    return operation


def test_retries_back_off_and_succeed() -> None:
    clock = FakeClock()
    policy = RetryPolicy(budget=30, first_delay=0.1, max_delay=1.0, jitter=0)
    result = call_with_retries(
        _flaky(6, 0.5, clock), "read", policy, clock=lambda: clock.now, sleep=clock.sleep
    )
    assert result == "done after 7 calls"
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_retries_stop_at_the_budget_with_a_clear_error() -> None:
    clock = FakeClock()
    policy = RetryPolicy(budget=10, first_delay=0.5, max_delay=2, jitter=0)
    with pytest.raises(StoreUnavailableError) as raised:
        call_with_retries(
            _flaky(10**6, 1.0, clock), "skyhook.scan on object 'd/o'", policy,
            clock=lambda: clock.now, sleep=clock.sleep,
        )  # fmt: skip
    message = str(raised.value)
    assert "skyhook.scan on object 'd/o'" in message and "retry-time = 10 s" in message
    assert "OSD restarting" in message and isinstance(raised.value.__cause__, SkyhookError)
    # No attempt started after the budget: the last one ended at most one call later.
    assert clock.now <= 10 + 1.0
    assert f"over {len(clock.sleeps) + 1} attempts" in message


@pytest.mark.parametrize(
    "error", [ObjectNotFoundError("s", "o"), QueryError("bad"), ChecksumError("o", "a", "b")]
)
def test_only_unavailability_is_retried(error: Exception) -> None:
    calls: list[int] = []

    def operation() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        call_with_retries(operation, "x", RetryPolicy(budget=60), sleep=lambda _: None)
    assert calls == [1]


class FlakyStore(MemoryStore):
    """Its next ``failures`` class calls fail as if the OSD were restarting."""

    failures = 0

    def exec(self, name: str, cls: str, method: str, payload: bytes) -> bytes:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError(f"{self.url} is restarting")
        return super().exec(name, cls, method, payload)


def test_class_calls_retry_within_skyhook_retry_time() -> None:
    store = FlakyStore(f"flaky-{uuid.uuid4().hex}")
    table = sample_table()
    store.write("d/o", write_object(table))
    payload = SAMPLE_PAYLOADS["scan"]
    expected = decode_result(store.exec("d/o", "skyhook", "scan", payload))[0]
    assert expected.num_rows > 0
    store.failures = 3
    assert decode_result(call_class(store, "d/o", "scan", payload))[0].equals(expected)
    store.failures = 3
    with (
        dask.config.set({"skyhook.retry-time": 0}),
        pytest.raises(StoreUnavailableError, match="restarting"),
    ):
        call_class(store, "d/o", "scan", payload)
