"""Retrying storage calls through brief outages, within a bounded total time.

An OSD restart, a monitor election or a dropped connection makes a storage call fail with
:class:`~skyhook_dask.exceptions.StoreUnavailableError` (the RADOS backend reports a librados
timeout or a refused connection that way, and drops the broken handle, so the next attempt
reconnects). Such a call is worth repeating; every other error is final and is raised at once.

:func:`call_with_retries` repeats a call after delays that start at ``first_delay`` and double
up to ``max_delay`` (with jitter, so that many tasks do not retry in lockstep), and starts no
attempt once ``budget`` seconds have passed since the first one. A storage that stays down is
therefore reported after at most ``budget`` plus one attempt's own timeout (``skyhook.timeout``
or the store URL's ``timeout=``), with a message saying how long it was tried.

The budget is the ``skyhook.retry-time`` setting (seconds, default 30; 0 disables retries).
Only idempotent calls are retried here (reads and object-class calls): a retried write could
find its own first attempt already applied.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import dask.config

from .exceptions import StoreUnavailableError

__all__ = ["DEFAULT_RETRY_TIME", "RetryPolicy", "call_with_retries"]

T = TypeVar("T")
DEFAULT_RETRY_TIME = 30.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often a failed call is repeated."""

    budget: float = DEFAULT_RETRY_TIME  # seconds after the first attempt; no attempt after it
    first_delay: float = 0.05
    max_delay: float = 2.0
    jitter: float = 0.25  # each delay is scaled by a random factor in [1 - jitter, 1 + jitter]

    def __post_init__(self) -> None:
        if self.budget < 0 or self.first_delay < 0 or self.max_delay < self.first_delay:
            raise ValueError(
                f"invalid retry policy {self}: budget and delays must be >= 0 and "
                "max_delay >= first_delay"
            )
        if not 0 <= self.jitter < 1:
            raise ValueError(f"retry jitter must be in [0, 1), not {self.jitter}")

    @classmethod
    def from_config(cls) -> RetryPolicy:
        """The policy of the ``skyhook.retry-time`` setting."""
        budget = dask.config.get("skyhook.retry-time", DEFAULT_RETRY_TIME)
        return cls(budget=float(DEFAULT_RETRY_TIME if budget is None else budget))

    def delays(self, rng: random.Random | None = None) -> Callable[[int], float]:
        """The delay before retry number ``n`` (1, 2, ...)."""
        # the module's shared generator: seeding one per call cost 30 us of every object call
        draw = rng.random if rng is not None else random.random

        def delay(n: int) -> float:
            base = min(self.max_delay, self.first_delay * 2 ** (n - 1))
            return base * (1 + self.jitter * (2 * draw() - 1))

        return delay


def call_with_retries(
    operation: Callable[[], T],
    what: str,
    policy: RetryPolicy | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``operation()``, repeated while it raises StoreUnavailableError and the budget lasts.

    ``what`` names the call in log lines and in the final error. ``clock`` and ``sleep`` are
    replaceable so that tests can run the schedule without waiting.
    """
    policy = policy or RetryPolicy.from_config()
    delay_of = policy.delays()
    started = clock()
    deadline = started + policy.budget
    attempt = 1
    while True:
        try:
            return operation()
        except StoreUnavailableError as exc:
            now = clock()
            delay = delay_of(attempt)
            if now + delay > deadline:
                if attempt == 1:
                    raise
                raise StoreUnavailableError(
                    f"{what}: the storage stayed unavailable for {now - started:.1f} s over "
                    f"{attempt} attempts (skyhook.retry-time = {policy.budget:g} s); last "
                    f"error: {exc}"
                ) from exc
            logger.warning(
                "%s failed (attempt %d, retrying in %.2f s): %s", what, attempt, delay, exc
            )
        sleep(delay)
        attempt += 1
