"""The rate limits and budgets, on a fake clock."""

import asyncio

import pytest

from app.services.login_throttle import LoginRefused, LoginSlot, LoginThrottle
from app.services.throttle import Budget, ConcurrencyGate, SlidingWindow, Summary, Turns

pytestmark = pytest.mark.fast


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_then_retry_after_from_the_real_window() -> None:
    clock = Clock()
    window = SlidingWindow(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert window.retry_after("a") is None
        window.hit("a")
        clock.now += 10  # hits at 1000, 1010, 1020
    assert clock.now == 1030
    assert window.retry_after("a") == 30  # the hit at 1000 leaves the window at 1060
    assert window.retry_after("b") is None  # keys are independent
    clock.now = 1059.5
    assert window.retry_after("a") == 1
    clock.now = 1060
    assert window.retry_after("a") is None
    window.hit("a")
    assert window.retry_after("a") == 10  # now the hit at 1010 is the oldest


def test_keys_are_bounded() -> None:
    clock = Clock()
    window = SlidingWindow(limit=1, window_s=60, clock=clock, max_keys=100)
    for n in range(1000):
        window.hit(f"user{n}")
    assert len(window._events) == 100
    assert window.retry_after("user999") is not None
    assert window.retry_after("user0") is None  # evicted, the oldest


def test_acquire_checks_and_counts_in_one_step_and_give_back_undoes_it() -> None:
    clock = Clock()
    window = SlidingWindow(limit=2, window_s=60, clock=clock)
    first = window.acquire("a")
    clock.now += 1
    second = window.acquire("a")
    assert first == 1000 and second == 1001
    assert window.acquire("a") is None  # full: nothing counted
    assert window.count("a") == 2
    window.give_back("a", 1001)
    assert window.count("a") == 1
    assert window.acquire("a") == 1001
    window.give_back("a", 999)  # never counted: ignored
    assert window.count("a") == 2
    clock.now = 1060
    window.give_back("a", 1000)  # already left the window: ignored
    assert window.count("a") == 1


def test_login_throttle_keeps_a_clean_address_in_after_the_username_limit() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=2, window_s=60, clock=clock)
    # The attacker fills the username's limit and their own address's.
    for _ in range(2):
        assert isinstance(throttle.reserve("attacker", "admin"), LoginSlot)
    refused = throttle.reserve("attacker", "admin")
    assert refused == LoginRefused(60, ("address", "username"))
    # A clean address still gets in, on the clean-address allowance.
    slot = throttle.reserve("desk", "admin")
    assert isinstance(slot, LoginSlot) and slot.clean_allowance
    # While its attempt is pending the desk is no longer clean: one at a time.
    clock.now += 10
    assert throttle.reserve("desk", "admin") == LoginRefused(50, ("username",))
    throttle.give_back(slot)  # it succeeded
    assert isinstance(throttle.reserve("desk", "admin"), LoginSlot)
    # Another clean address fills the allowance (2): now only time helps.
    assert isinstance(throttle.reserve("other", "admin"), LoginSlot)
    assert throttle.reserve("third", "admin") == LoginRefused(50, ("username",))
    clock.now += 50
    assert isinstance(throttle.reserve("third", "admin"), LoginSlot)


def test_login_throttle_retry_after_is_the_earliest_real_moment() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=2, window_s=60, clock=clock)
    throttle.reserve("x", "admin")  # t=1000
    clock.now = 1030
    throttle.reserve("y", "admin")  # t=1030: username full
    clock.now = 1040
    throttle.reserve("z", "admin")  # clean: allowance 1 of 2
    throttle.reserve("w", "admin")  # clean: allowance full
    # x is not clean (its attempt leaves at 1060); the username has room at 1060 too.
    assert throttle.reserve("x", "admin") == LoginRefused(20, ("username",))
    clock.now = 1059.5
    assert throttle.reserve("x", "admin") == LoginRefused(1, ("username",))
    clock.now = 1060
    assert isinstance(throttle.reserve("x", "admin"), LoginSlot)


def test_gate_refuses_beyond_its_limit_instead_of_waiting() -> None:
    gate = ConcurrencyGate(2)
    assert gate.try_enter() and gate.try_enter()
    assert not gate.try_enter()
    gate.leave()
    assert gate.in_use == 1 and gate.try_enter()


def test_summary_writes_once_per_key_per_window_and_counts_the_rest() -> None:
    clock = Clock()
    summary = Summary(window_s=60, clock=clock)
    assert summary.note("a") == 0
    assert [summary.note("a") for _ in range(5)] == [None] * 5
    assert summary.note("b") == 0
    clock.now += 60
    assert summary.note("a") == 5
    assert summary.note("a") is None


def test_budget_hands_the_refused_count_to_the_next_use() -> None:
    clock = Clock()
    budget = Budget(limit=2, window_s=60, clock=clock)
    assert [budget.take() for _ in range(5)] == [0, 0, None, None, None]
    clock.now += 60
    assert budget.take() == 3
    assert budget.take() == 0


def test_turns_let_one_holder_per_key_at_a_time_and_forget_idle_keys() -> None:
    async def scenario() -> list[str]:
        turns = Turns()
        order: list[str] = []

        async def worker(name: str, key: str) -> None:
            await turns.take(key)
            order.append(f"{name}+")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            order.append(f"{name}-")
            turns.give(key)

        await asyncio.gather(worker("a1", "a"), worker("a2", "a"), worker("b1", "b"))
        assert len(turns) == 0
        # A waiter that is cancelled leaves the line without a trace.
        await turns.take("a")
        waiter = asyncio.create_task(turns.take("a"))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        turns.give("a")
        assert len(turns) == 0
        return order

    order = asyncio.run(scenario())
    assert order.index("a1-") < order.index("a2+")  # a2 waited for a1
    assert order.index("b1+") < order.index("a1-")  # b did not wait for a
