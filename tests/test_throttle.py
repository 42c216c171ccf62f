from app.services.throttle import SlidingWindow


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
