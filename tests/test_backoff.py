"""Open-timeout policies: fixed and exponential, with a cap that holds for any trip number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from circuit_breakers import Backoff, CircuitBreakerConfig, ExponentialBackoff, FixedBackoff
from circuit_breakers.backoff import backoff_from_config


@pytest.mark.parametrize("trip", [1, 2, 3, 10, 1000])
def test_fixed_backoff_is_constant(trip: int) -> None:
    assert FixedBackoff(45)(trip) == 45.0


@pytest.mark.parametrize(("trip", "expected"), [(1, 60), (2, 120), (3, 240), (4, 300), (5, 300), (6, 300)])
def test_exponential_backoff_doubles_up_to_cap(trip: int, expected: float) -> None:
    assert ExponentialBackoff(60, 2.0, 300)(trip) == expected


@pytest.mark.parametrize(("trip", "expected"), [(1, 10), (2, 30), (3, 90), (4, 270), (5, 500), (6, 500)])
def test_exponential_backoff_with_other_multiplier(trip: int, expected: float) -> None:
    assert ExponentialBackoff(10, 3.0, 500)(trip) == pytest.approx(expected)


def test_multiplier_one_keeps_backoff_constant() -> None:
    backoff = ExponentialBackoff(60, 1.0, 300)
    assert [backoff(trip) for trip in range(1, 7)] == [60.0] * 6


@pytest.mark.parametrize("trip", [1_024, 1_025, 10_000, 10**6, 10**100])
def test_huge_trip_numbers_hit_the_cap(trip: int) -> None:
    assert ExponentialBackoff(60, 2.0, 300)(trip) == 300.0


@given(
    initial=st.floats(min_value=0.001, max_value=1e4),
    multiplier=st.floats(min_value=1.0, max_value=100.0),
    trip=st.integers(min_value=1, max_value=10**6),
)
def test_exponential_backoff_is_monotone_and_capped(initial: float, multiplier: float, trip: int) -> None:
    backoff = ExponentialBackoff(initial, multiplier, initial * 10)
    assert initial <= backoff(trip) <= initial * 10
    assert backoff(trip) <= backoff(trip + 1)


def test_backoff_is_abstract() -> None:
    with pytest.raises(TypeError):
        Backoff()  # type: ignore[abstract]


def test_config_with_exponential_backoff_gives_exponential_policy() -> None:
    backoff = backoff_from_config(
        CircuitBreakerConfig(open_timeout_seconds=5, backoff_multiplier=3, max_backoff_seconds=40)
    )
    assert [backoff(trip) for trip in (1, 2, 3, 4)] == [5.0, 15.0, 40.0, 40.0]


def test_config_without_exponential_backoff_gives_fixed_policy() -> None:
    backoff = backoff_from_config(CircuitBreakerConfig(open_timeout_seconds=5, exponential_backoff=False))
    assert isinstance(backoff, FixedBackoff)
    assert [backoff(trip) for trip in (1, 2, 10)] == [5.0, 5.0, 5.0]
