"""ResetKey and ResetGuard: the secret never leaks, wrong keys are counted, lockouts hold."""

from __future__ import annotations

import logging
import threading
from typing import Any, List

import pytest

from circuit_breakers.clock import ManualClock
from circuit_breakers.errors import ConfigError, ConfigTypeError, KillSwitchError
from circuit_breakers.trading import killswitch
from circuit_breakers.trading.killswitch import ResetGuard, ResetKey

SECRET = "hunter2-Zq9-reset-secret"


@pytest.fixture(scope="module")
def key() -> ResetKey:
    return ResetKey(SECRET)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def leaks(text: object) -> bool:
    """True if the secret, or its bytes, shows up in ``text``."""
    rendered = str(text)
    return SECRET in rendered or SECRET.encode().hex() in rendered


def assert_no_leak_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert not leaks(record.getMessage()), record
        assert not leaks(repr(record.args)), record
        assert not leaks(record.exc_text or ""), record


# ResetKey


def test_right_key_verifies(key: ResetKey) -> None:
    assert key.verify(SECRET) is True


def test_bytes_candidate_is_the_utf8_secret(key: ResetKey) -> None:
    assert key.verify(SECRET.encode()) is True


def test_wrong_key_fails(key: ResetKey) -> None:
    assert key.verify(SECRET + "x") is False


@pytest.mark.parametrize("candidate", [None, 12345, ["hunter2"], bytearray(SECRET.encode()), object()])
def test_non_str_candidate_is_false(key: ResetKey, candidate: object) -> None:
    assert key.verify(candidate) is False


def test_lone_surrogate_candidate_is_false_not_an_error(key: ResetKey) -> None:
    assert key.verify("\udcff" + SECRET) is False


def test_bytes_secret() -> None:
    assert ResetKey(b"\x00\xffraw").verify(b"\x00\xffraw") is True


def test_repr_and_str_hide_everything(key: ResetKey) -> None:
    assert repr(key) == "ResetKey(<hidden>)"
    assert str(key) == "ResetKey(<hidden>)"


def test_secret_is_not_kept_in_any_attribute(key: ResetKey) -> None:
    assert not hasattr(key, "__dict__")
    for name in dir(key):
        value = getattr(key, name)
        assert not leaks(repr(value)), name
        if isinstance(value, bytes):
            assert SECRET.encode() not in value, name


def test_salts_differ_between_keys() -> None:
    assert ResetKey("same").to_dict()["salt"] != ResetKey("same").to_dict()["salt"]


@pytest.mark.parametrize("secret", [123456, 1.5, None, bytearray(b"hunter2"), ["hunter2"]])
def test_secret_of_wrong_type_is_rejected_without_echo(secret: object) -> None:
    with pytest.raises(ConfigTypeError) as info:
        ResetKey(secret)  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value)
    assert "123456" not in str(info.value)


@pytest.mark.parametrize("secret", ["", b""])
def test_empty_secret_is_rejected(secret: str | bytes) -> None:
    with pytest.raises(ConfigError, match="must not be empty"):
        ResetKey(secret)


def test_dict_round_trip_verifies(key: ResetKey) -> None:
    data = key.to_dict()
    assert set(data) == {"algorithm", "n", "r", "p", "salt", "hash"}
    assert not any(leaks(value) for value in data.values())
    rebuilt = ResetKey.from_dict(data)
    assert rebuilt.verify(SECRET) is True
    assert rebuilt.verify("wrong") is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"algorithm": "md5"}, "algorithm"),
        ({"n": 2}, "n must be"),
        ({"salt": "zz"}, "salt must be a hex string"),
        ({"salt": "00"}, "salt must be 16 bytes"),
        ({"hash": None}, "hash must be a hex string"),
    ],
)
def test_from_dict_rejects_malformed_data(key: ResetKey, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ResetKey.from_dict({**key.to_dict(), **change})


# ResetGuard


def test_guard_accepts_right_key(key: ResetKey, clock: ManualClock) -> None:
    assert ResetGuard(key, clock=clock).check(SECRET) is True


def test_guard_rejects_wrong_and_non_str_keys(key: ResetKey, clock: ManualClock) -> None:
    guard = ResetGuard(key, clock=clock)
    assert guard.check("wrong") is False
    assert guard.check(None) is False
    assert guard.status() == {"failed_attempts": 2, "locked_out_for": 0.0, "has_key": True}


def test_no_key_configured_raises(clock: ManualClock) -> None:
    guard = ResetGuard(None, clock=clock)
    assert guard.status()["has_key"] is False
    with pytest.raises(KillSwitchError, match="no reset key configured"):
        guard.check(SECRET)


def test_raw_secret_passed_as_key_is_rejected_without_echo(clock: ManualClock) -> None:
    with pytest.raises(ConfigTypeError) as info:
        ResetGuard(SECRET, clock=clock)  # type: ignore[arg-type]
    assert not leaks(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_attempts": -1}, ConfigError),
        ({"max_attempts": 1.5}, ConfigTypeError),
        ({"lockout_seconds": 0}, ConfigError),
        ({"clock": object()}, ConfigTypeError),
    ],
)
def test_guard_settings_are_checked(
    key: ResetKey, clock: ManualClock, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        ResetGuard(key, **{"clock": clock, **kwargs})


def test_lockout_after_max_attempts_refuses_even_the_right_key(key: ResetKey, clock: ManualClock) -> None:
    guard = ResetGuard(key, clock=clock, max_attempts=3, lockout_seconds=60)
    assert [guard.check("wrong") for _ in range(3)] == [False, False, False]
    assert guard.status() == {"failed_attempts": 3, "locked_out_for": 60.0, "has_key": True}
    with pytest.raises(KillSwitchError, match=r"locked out for another 60\.0s"):
        guard.check(SECRET)
    clock.advance(59.5)
    with pytest.raises(KillSwitchError, match=r"another 0\.5s"):
        guard.check(SECRET)


def test_lockout_does_not_hash(key: ResetKey, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    guard = ResetGuard(key, clock=clock, max_attempts=1, lockout_seconds=10)
    assert guard.check("wrong") is False
    calls: List[bytes] = []

    def spy(secret: bytes, salt: bytes) -> bytes:
        calls.append(secret)
        return b""

    monkeypatch.setattr(killswitch, "_derive", spy)
    with pytest.raises(KillSwitchError):
        guard.check(SECRET)
    assert calls == []


def test_lockout_expires_and_restores_attempts(key: ResetKey, clock: ManualClock) -> None:
    guard = ResetGuard(key, clock=clock, max_attempts=2, lockout_seconds=30)
    guard.check("wrong")
    guard.check("wrong")
    clock.advance(30)
    assert guard.status() == {"failed_attempts": 0, "locked_out_for": 0.0, "has_key": True}
    assert guard.check("wrong") is False  # one wrong key after expiry does not lock out again
    assert guard.check(SECRET) is True


def test_right_key_resets_the_consecutive_count(key: ResetKey, clock: ManualClock) -> None:
    guard = ResetGuard(key, clock=clock, max_attempts=3)
    guard.check("wrong")
    guard.check("wrong")
    assert guard.check(SECRET) is True
    assert guard.status()["failed_attempts"] == 0
    guard.check("wrong")
    guard.check("wrong")
    assert guard.status()["locked_out_for"] == 0.0


def test_max_attempts_zero_disables_lockout(key: ResetKey, clock: ManualClock) -> None:
    guard = ResetGuard(key, clock=clock, max_attempts=0)
    assert not any(guard.check("wrong") for _ in range(8))
    assert guard.status() == {"failed_attempts": 8, "locked_out_for": 0.0, "has_key": True}
    assert guard.check(SECRET) is True


def test_wrong_key_logs_warning_with_count(key: ResetKey, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    guard = ResetGuard(key, clock=clock, max_attempts=2, lockout_seconds=5)
    guard.check("wrong-one")
    guard.check("wrong-two")
    warnings = [r for r in caplog.records if r.name == killswitch.__name__ and r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "kill switch reset refused: wrong key (1 consecutive)",
        "kill switch reset refused: wrong key (2 consecutive); resets locked out for 5.0s",
    ]
    assert not any("wrong-" in r.getMessage() or "wrong-" in repr(r.args) for r in caplog.records)


def test_secret_never_reaches_logs_reprs_or_errors(
    key: ResetKey, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    guard = ResetGuard(ResetKey(SECRET), clock=clock, max_attempts=2, lockout_seconds=5)
    seen: List[object] = [repr(guard), str(guard), guard.status()]
    guard.check(SECRET)
    guard.check(SECRET[::-1])
    guard.check(SECRET + " ")
    for candidate in (SECRET, SECRET.encode()):
        with pytest.raises(KillSwitchError) as info:
            guard.check(candidate)
        seen += [info.value, repr(info.value), info.value.args]
    with pytest.raises(KillSwitchError) as no_key:
        ResetGuard(None, clock=clock).check(SECRET)
    seen += [no_key.value, repr(guard), guard.status()]
    assert caplog.records, "expected the guard to log"
    assert_no_leak_in_logs(caplog)
    assert not any(leaks(item) for item in seen)


def test_threads_hammering_wrong_keys_are_counted_exactly(key: ResetKey, clock: ManualClock) -> None:
    guard = ResetGuard(key, clock=clock, max_attempts=0)
    threads_count, per_thread = 8, 3
    barrier = threading.Barrier(threads_count)
    results: List[bool] = []
    results_lock = threading.Lock()

    def hammer() -> None:
        barrier.wait()
        for _ in range(per_thread):
            ok = guard.check("wrong")
            with results_lock:
                results.append(ok)

    threads = [threading.Thread(target=hammer) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [False] * threads_count * per_thread
    assert guard.status()["failed_attempts"] == threads_count * per_thread


def test_threads_racing_a_lockout_count_exactly_max_attempts(key: ResetKey, clock: ManualClock) -> None:
    guard = ResetGuard(key, clock=clock, max_attempts=5, lockout_seconds=60)
    threads_count, per_thread = 8, 2
    barrier = threading.Barrier(threads_count)
    outcomes: List[str] = []
    outcomes_lock = threading.Lock()

    def hammer() -> None:
        barrier.wait()
        for _ in range(per_thread):
            try:
                outcome = "accepted" if guard.check("wrong") else "wrong"
            except KillSwitchError:
                outcome = "locked"
            with outcomes_lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=hammer) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("wrong") == 5
    assert outcomes.count("locked") == threads_count * per_thread - 5
    assert guard.status()["failed_attempts"] == 5
