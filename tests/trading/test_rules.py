"""The pure trading rules: figures and limits in, a Verdict out."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from circuit_breakers import TradingBreakerConfig
from circuit_breakers.trading import rules
from circuit_breakers.trading.rules import Level

from .conftest import unit_returns

CONFIG = TradingBreakerConfig()
D = Decimal


# --- daily loss -----------------------------------------------------------------------------------


def test_daily_loss_exactly_at_the_limit_trips() -> None:
    verdict = rules.daily_loss(D("-2.0"), CONFIG)
    assert verdict.level is Level.TRIP
    assert verdict.value == D("-2.0")


def test_daily_loss_one_hundredth_above_the_limit_does_not_trip() -> None:
    verdict = rules.daily_loss(D("-1.99"), CONFIG)
    assert verdict.level is Level.WARN


def test_daily_loss_below_the_limit_trips_with_value_and_limit_in_message() -> None:
    verdict = rules.daily_loss(D("-2.5"), CONFIG)
    assert verdict.level is Level.TRIP
    assert verdict.message == "P&L -2.50% <= limit -2.00%"


def test_daily_loss_exactly_at_the_warning_level_warns() -> None:
    verdict = rules.daily_loss(D("-1.5"), CONFIG)
    assert verdict.level is Level.WARN
    assert "-1.5" in verdict.message


def test_daily_loss_above_the_warning_level_is_ok() -> None:
    assert rules.daily_loss(D("-1.49"), CONFIG).level is Level.OK
    assert rules.daily_loss(D("3.2"), CONFIG).level is Level.OK


# --- drawdown -------------------------------------------------------------------------------------


def test_drawdown_exactly_at_the_limit_trips() -> None:
    verdict = rules.drawdown(D("-10.0"), CONFIG)
    assert verdict.level is Level.TRIP
    assert "-10.0" in verdict.message


def test_drawdown_one_hundredth_above_the_limit_does_not_trip() -> None:
    assert rules.drawdown(D("-9.99"), CONFIG).level is Level.WARN


def test_drawdown_warning_boundaries() -> None:
    assert rules.drawdown(D("-7.0"), CONFIG).level is Level.WARN
    assert rules.drawdown(D("-6.99"), CONFIG).level is Level.OK
    assert rules.drawdown(D(0), CONFIG).level is Level.OK


# --- volatility -----------------------------------------------------------------------------------


def test_volatility_without_returns_method_is_ok_and_says_why() -> None:
    verdict = rules.volatility(D("-9"), None, CONFIG)
    assert verdict.level is Level.OK
    assert verdict.value is None
    assert "get_daily_returns" in verdict.message


def test_volatility_with_too_few_samples_is_ok_and_says_why() -> None:
    verdict = rules.volatility(D("-9"), unit_returns()[:4], CONFIG)
    assert verdict.level is Level.OK
    assert "4" in verdict.message
    assert str(CONFIG.volatility_min_samples) in verdict.message


def test_volatility_with_zero_variance_is_ok_and_says_why() -> None:
    verdict = rules.volatility(D("-9"), [D("0.5")] * 10, CONFIG)
    assert verdict.level is Level.OK
    assert "variance" in verdict.message


@pytest.mark.parametrize("today", [D(4), D(-4)])
def test_four_sigma_day_trips_both_ways(today: Decimal) -> None:
    verdict = rules.volatility(today, unit_returns(), CONFIG)
    assert verdict.level is Level.TRIP
    assert verdict.value == today  # mean 0, sample std 1
    assert "3.0" in verdict.message


@pytest.mark.parametrize("today", [D(3), D(-3), D("2.5"), D(0)])
def test_volatility_within_three_sigma_is_ok(today: Decimal) -> None:
    verdict = rules.volatility(today, unit_returns(), CONFIG)
    assert verdict.level is Level.OK
    assert verdict.value == today


def test_volatility_uses_only_the_lookback_window() -> None:
    config = TradingBreakerConfig(volatility_lookback_days=5)
    # Older samples have a huge spread; only the last five (std 1) count.
    returns = [D(-50), D(50), D(-50), *unit_returns()]
    assert rules.volatility(D(4), returns, config).level is Level.TRIP


def test_volatility_uses_sample_standard_deviation() -> None:
    # [0, 2] * 3: mean 1, sample variance 6/5 -> std ~1.0954; 1 + 3.3 * 1.0954 ~ 4.61.
    returns = [D(0), D(2)] * 3
    assert rules.volatility(D("4.2"), returns, CONFIG).level is Level.OK  # z ~ 2.92
    assert rules.volatility(D("4.4"), returns, CONFIG).level is Level.TRIP  # z ~ 3.10


# --- concentration --------------------------------------------------------------------------------


def test_concentration_exactly_at_the_limit_is_allowed() -> None:
    verdict = rules.concentration(D(10), D(100_000), D(1_000_000), CONFIG)
    assert verdict.level is not Level.TRIP
    assert verdict.value == D(20)


def test_concentration_just_above_the_limit_trips() -> None:
    verdict = rules.concentration(D(10), D("100000.01"), D(1_000_000), CONFIG)
    assert verdict.level is Level.TRIP
    assert "20.0" in verdict.message


def test_concentration_above_warning_warns() -> None:
    assert rules.concentration(D(10), D(60_000), D(1_000_000), CONFIG).level is Level.WARN
    assert rules.concentration(D(10), D(50_000), D(1_000_000), CONFIG).level is Level.OK


@pytest.mark.parametrize("total", [D(0), D(-1)])
def test_concentration_with_non_positive_total_trips(total: Decimal) -> None:
    verdict = rules.concentration(D(0), D(1), total, CONFIG)
    assert verdict.level is Level.TRIP
    assert verdict.value is None


def test_concentration_rounds_towards_the_limit() -> None:
    # 19.99999 % + 0.00002 % = 20.00001 %: a sliver over 20 % must not round down to exactly 20 %.
    verdict = rules.concentration(D("19.99999"), D("0.20"), D(1_000_000), CONFIG)
    assert verdict.level is Level.TRIP
    # 19.99999 % + 0.000002 % is still under the limit.
    assert rules.concentration(D("19.99999"), D("0.02"), D(1_000_000), CONFIG).level is Level.WARN


# --- drawdown helpers -----------------------------------------------------------------------------


def test_drawdown_from_peak() -> None:
    assert rules.drawdown_from_peak(D(900_000), D(1_000_000)) == D(-10)
    assert rules.drawdown_from_peak(D(850_000), D(1_000_000)) == D(-15)


def test_drawdown_from_peak_is_zero_at_or_above_the_peak() -> None:
    assert rules.drawdown_from_peak(D(1_000_000), D(1_000_000)) == 0
    assert rules.drawdown_from_peak(D(1_100_000), D(1_000_000)) == 0


@pytest.mark.parametrize("peak", [D(0), D(-100)])
def test_drawdown_from_peak_without_a_positive_peak_is_zero(peak: Decimal) -> None:
    assert rules.drawdown_from_peak(D(50), peak) == 0


def test_drawdown_from_peak_rounds_towards_the_worse_side() -> None:
    # 2/3 - 1 = -33.333...%: rounded to -33.3334, never -33.3333.
    assert rules.drawdown_from_peak(D(2), D(3)) == D("-33.3334")


def test_rebased_drawdown_measures_from_the_baseline() -> None:
    assert rules.rebased_drawdown(D(-10), D(-10)) == 0
    assert rules.rebased_drawdown(D(-19), D(-10)) == D(-10)  # 81 / 90 - 1
    assert rules.rebased_drawdown(D(-15), D(-5)) == D("-10.5264")  # 85 / 95 - 1, rounded down


def test_rebased_drawdown_never_goes_positive() -> None:
    assert rules.rebased_drawdown(D(-3), D(-5)) == 0


def test_rebased_drawdown_with_zero_baseline_is_unchanged() -> None:
    assert rules.rebased_drawdown(D("-12.5"), D(0)) == D("-12.5")


@given(
    value=st.decimals(min_value=1, max_value=10**9, places=2),
    peak=st.decimals(min_value=1, max_value=10**9, places=2),
)
def test_drawdown_from_peak_is_never_positive_nor_below_minus_hundred(value: Decimal, peak: Decimal) -> None:
    assert D(-100) <= rules.drawdown_from_peak(value, peak) <= 0


@given(
    drawdown=st.decimals(min_value=-99, max_value=0, places=4),
    baseline=st.decimals(min_value=-99, max_value=0, places=4),
)
def test_rebased_drawdown_is_never_worse_than_the_raw_one_by_more_than_rounding(
    drawdown: Decimal, baseline: Decimal
) -> None:
    rebased = rules.rebased_drawdown(drawdown, baseline)
    assert rebased <= 0
    assert rebased >= drawdown - D("0.0001")
