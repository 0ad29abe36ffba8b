"""BucketedWindow and Tally: counting, expiry bounds, clocks that step back, long gaps, bounded memory,
and the lock-free counting into the live bucket."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from circuit_breakers.window import BucketedWindow, Tally


def test_new_window_is_empty() -> None:
    assert BucketedWindow(60).totals(0.0) == (0, 0)


def test_counts_calls_and_failures() -> None:
    window = BucketedWindow(60)
    window.add(1.0, False)
    window.add(2.0, True)
    window.add(2.5, True)
    assert window.totals(3.0) == (3, 2)


def test_events_in_one_bucket_all_count() -> None:
    window = BucketedWindow(60)
    for _ in range(5):
        window.add(10.2, True)
    assert window.totals(10.9) == (5, 5)


@pytest.mark.parametrize("start", [100.0, 100.25, 100.5, 100.999])
def test_event_still_counts_just_before_window_minus_one_bucket(start: float) -> None:
    window = BucketedWindow(60)  # 60 buckets of 1 s
    window.add(start, True)
    assert window.totals(start + 59 - 0.001) == (1, 1)


@pytest.mark.parametrize("start", [100.0, 100.25, 100.5, 100.999])
def test_event_no_longer_counts_after_full_window(start: float) -> None:
    window = BucketedWindow(60)
    window.add(start, True)
    assert window.totals(start + 60) == (0, 0)


@given(
    start=st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    seconds=st.sampled_from([30.0, 60.0, 120.0, 600.0]),
)
def test_expiry_happens_between_window_minus_bucket_and_window(start: float, seconds: float) -> None:
    width = seconds / 60
    window = BucketedWindow(seconds)
    window.add(start, True)
    assert window.totals(start + seconds - width - 1e-3) == (1, 1)
    assert window.totals(start + seconds) == (0, 0)


def test_only_expired_events_leave() -> None:
    window = BucketedWindow(60)
    window.add(0.5, True)
    window.add(30.5, False)
    assert window.totals(61.0) == (1, 0)


def test_custom_bucket_count_sets_resolution() -> None:
    window = BucketedWindow(10, buckets=10)  # 1 s buckets
    window.add(0.0, True)
    assert window.totals(8.9) == (1, 1)
    assert window.totals(10.0) == (0, 0)


def test_clock_stepping_back_counts_into_newest_bucket() -> None:
    window = BucketedWindow(60)
    window.add(10.0, False)
    window.add(5.0, True)  # an injected clock stepped back
    assert window.totals(10.0) == (2, 1)
    # Counted in the newest bucket (second 10), it expires with it, not with second 5.
    assert window.totals(69.5) == (2, 1)
    assert window.totals(70.0) == (0, 0)


def test_long_gap_clears_everything() -> None:
    window = BucketedWindow(60)
    for second in range(60):
        window.add(float(second), second % 2 == 0)
    assert window.totals(59.0) == (60, 30)
    assert window.totals(10_000.0) == (0, 0)


def test_counts_after_long_gap_start_fresh() -> None:
    window = BucketedWindow(60)
    for second in range(60):
        window.add(second + 0.5, True)
    window.add(500.0, False)
    # Stepping through the buckets after the gap must not bring back stale counts.
    assert window.totals(520.0) == (1, 0)
    assert window.totals(559.0) == (1, 0)
    assert window.totals(560.0) == (0, 0)


def test_clear_forgets_every_event() -> None:
    window = BucketedWindow(60)
    window.add(1.0, True)
    window.add(2.0, False)
    window.clear()
    assert window.totals(3.0) == (0, 0)
    window.add(4.0, True)
    assert window.totals(5.0) == (1, 1)


def test_memory_is_bounded_by_bucket_count() -> None:
    window = BucketedWindow(60)
    for i in range(100_000):
        window.add(i * 0.01, i % 2 == 0)
    assert len(window._calls) == 60
    assert len(window._failures) == 60
    # Seconds 940..999 are live: 6000 calls, half of them failures.
    assert window.totals(999.99) == (6000, 3000)


def test_negative_monotonic_times_expire_after_window() -> None:
    window = BucketedWindow(60)
    window.add(-1000.0, True)
    assert window.totals(-900.0) == (0, 0)


# --- lock-free counting: Tally and the live bucket --------------------------------------------------


def test_tally_counts_every_add_and_reads_without_disturbing() -> None:
    tally = Tally()
    for _ in range(5):
        tally.add()
    assert tally.value() == 5
    assert tally.value() == 5  # a read takes a number but does not count it
    tally.add()
    assert tally.value() == 6


def test_tally_is_exact_under_threads() -> None:
    tally = Tally()
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(20_000):
            tally.add()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert tally.value() == 160_000


def test_window_counts_lock_free_successes_into_the_live_bucket() -> None:
    window = BucketedWindow(60)  # buckets of 1 s
    window.add(10.5, True)  # opens bucket [10, 11)
    start, end, add = window.live
    assert (start, end) == (10.0, 11.0)
    add()
    add()
    assert window.totals(10.9) == (3, 1)
    assert window.totals(69.9) == (3, 1)  # bucket 10 still inside the window ending at 69.9
    assert window.totals(70.0) == (0, 0)  # and gone when the window slides past it


def test_window_live_range_moves_with_the_head_and_empties_on_clear() -> None:
    window = BucketedWindow(60)
    window.add(5.0, False)
    window.totals(7.2)
    assert window.live[:2] == (7.0, 8.0)
    window.clear()
    start, end, _ = window.live
    assert not start <= 7.5 < end  # no live bucket: the next success takes the locked path
    assert window.totals(7.5) == (0, 0)


def test_a_late_lock_free_count_still_lands_in_its_own_bucket() -> None:
    window = BucketedWindow(60)
    window.add(10.5, False)
    _, _, late_add = window.live  # a thread reads the live bucket [10, 11) ...
    window.add(12.5, True)  # ... the window moves on twice before it counts ...
    window.add(13.5, False)
    late_add()  # ... and its success still counts, in bucket 10
    assert window.totals(13.9) == (4, 1)
    assert window.totals(70.5) == (2, 1)  # bucket 10 expires at 70 s, with the late count


def test_a_late_count_after_clear_is_dropped_with_its_period() -> None:
    window = BucketedWindow(60)
    window.add(10.5, False)
    _, _, late_add = window.live
    window.clear()
    late_add()
    assert window.totals(10.9) == (0, 0)
