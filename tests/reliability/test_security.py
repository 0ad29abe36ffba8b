"""The kill switch's reset key: never shown anywhere, compared in constant time, locked out after
repeated wrong keys, and every engage, reset and refused reset audited (log and JSON-lines file).

Already covered: the key absent from the state file, audit file, reprs, status and logs after an
engage/refuse/reset cycle (tests/trading/test_restart.py::test_reset_key_never_leaks); ResetKey and
ResetGuard on their own, lockout counting under threads included (tests/trading/test_reset_key.py);
the AuditLog format, fsync and concurrency (tests/trading/test_audit.py); engage/refusal/reset
entries in the file (test_restart.py::test_audit_trail_records_*). Here: the lockout path and bad
key types end to end, the comparison itself, and one table of every engage and reset path checked
in both the log and the file.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from circuit_breakers import ConfigError, KillSwitchError, ManualClock, TradingCircuitBreakers
from circuit_breakers.stores.memory import MemoryStore
from circuit_breakers.trading import killswitch
from circuit_breakers.trading.audit import AuditLog
from circuit_breakers.trading.killswitch import ResetKey

from ..trading.conftest import RESET_KEY, WRONG_KEY, FakeProvider
from .conftest import MakeBreakers

D = Decimal


def _texts(breakers: TradingCircuitBreakers, state_path: Path, caplog: pytest.LogCaptureFixture) -> Dict[str, str]:
    places = {
        "state file": state_path.read_bytes().decode("latin-1"),
        "audit file": Path(f"{state_path}.audit.jsonl").read_text(encoding="utf-8"),
        "repr": repr(breakers) + repr(breakers._guard) + repr(breakers._core.audit) + repr(breakers._core.store),
        "status": json.dumps(breakers.get_status().to_dict()),
    }
    for record in caplog.records:
        text = "\n".join([record.getMessage(), repr(record.args), record.exc_text or ""])
        places[f"log {record.name}"] = places.get(f"log {record.name}", "") + text
    return places


def test_key_never_leaks_through_the_lockout_path_or_bad_key_types(
    make_breakers: MakeBreakers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state_path = tmp_path / "state.json"
    breakers = make_breakers(reset_key=RESET_KEY, state_path=state_path, reset_max_attempts=2)
    breakers.engage_kill_switch("leak probe")
    errors: List[BaseException] = []
    wrong_candidates: List[Any] = [WRONG_KEY, WRONG_KEY.encode(), 12345, None, "\udcff" + WRONG_KEY]
    for candidate in wrong_candidates:
        try:
            assert breakers.reset_kill_switch(candidate, actor="mallory") is False
        except KillSwitchError as exc:  # locked out after two
            errors.append(exc)
    try:
        breakers.reset_kill_switch(RESET_KEY)
    except KillSwitchError as exc:  # even the right key, while locked out
        errors.append(exc)
    assert len(errors) == 4
    places = _texts(breakers, state_path, caplog)
    for number, error in enumerate(errors):
        places[f"error {number}"] = f"{error!s} {error!r} {error.args!r}"
    for where, text in places.items():
        for secret in (RESET_KEY, WRONG_KEY, RESET_KEY.encode().hex(), WRONG_KEY.encode().hex()):
            assert secret not in text, f"{secret!r} leaked into the {where}"
    assert "locked out" in str(errors[0])


def test_a_mismatched_key_is_refused_without_showing_either_key(tmp_path: Path, clock: ManualClock) -> None:
    # Two processes sharing a state must share the key: the message names neither.
    state = MemoryStore()
    first = TradingCircuitBreakers(FakeProvider(), reset_key=RESET_KEY, clock=clock, store=state)
    with pytest.raises(ConfigError) as info:
        TradingCircuitBreakers(FakeProvider(), reset_key=WRONG_KEY, clock=clock, store=state)
    text = f"{info.value!s} {info.value!r}"
    assert "does not match" in text
    assert RESET_KEY not in text
    assert WRONG_KEY not in text
    first.close()


def test_verification_uses_a_constant_time_comparison_of_equal_length_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    key = ResetKey(RESET_KEY)
    compared: List[Tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(killswitch.hmac, "compare_digest", spy)
    assert key.verify(RESET_KEY)
    assert not key.verify("x")  # a much shorter wrong key
    assert not key.verify(RESET_KEY[:-1] + "!")  # differs only in the last character
    assert not key.verify(RESET_KEY * 10)  # a much longer one
    # Every candidate is hashed first, so the comparison is always between 32-byte digests: its
    # time says nothing about how much of the key was right or how long the key is.
    assert compared == [(32, 32)] * 4


def test_lockout_is_configurable_and_off_with_zero_attempts(make_breakers: MakeBreakers, clock: ManualClock) -> None:
    strict = make_breakers(reset_key=RESET_KEY, reset_max_attempts=1, reset_lockout_seconds=30)
    strict.engage_kill_switch("test")
    assert strict.reset_kill_switch(WRONG_KEY) is False
    with pytest.raises(KillSwitchError, match=r"locked out for another 30\.0s after 1 consecutive"):
        strict.reset_kill_switch(RESET_KEY)
    assert strict.get_status().details["max_drawdown"]["reset"] == {
        "failed_attempts": 1,
        "locked_out_for": 30.0,
        "has_key": True,
    }
    clock.advance(30)
    assert strict.reset_kill_switch(RESET_KEY) is True

    lenient = make_breakers(reset_key=RESET_KEY, reset_max_attempts=0)
    lenient.engage_kill_switch("test")
    for _ in range(8):
        assert lenient.reset_kill_switch(WRONG_KEY) is False
    assert lenient.get_status().details["max_drawdown"]["reset"]["failed_attempts"] == 8
    assert lenient.reset_kill_switch(RESET_KEY) is True


def test_wrong_keys_are_counted_in_the_log(make_breakers: MakeBreakers, caplog: pytest.LogCaptureFixture) -> None:
    breakers = make_breakers(reset_key=RESET_KEY, reset_max_attempts=3)
    breakers.engage_kill_switch("test")
    with caplog.at_level(logging.WARNING, logger="circuit_breakers.trading.killswitch"):
        for _ in range(3):
            breakers.reset_kill_switch(WRONG_KEY)
        with pytest.raises(KillSwitchError):
            breakers.reset_kill_switch(WRONG_KEY)
    messages = [r.getMessage() for r in caplog.records if r.name == "circuit_breakers.trading.killswitch"]
    assert messages[0] == "kill switch reset refused: wrong key (1 consecutive)"
    assert messages[1] == "kill switch reset refused: wrong key (2 consecutive)"
    assert messages[2].startswith("kill switch reset refused: wrong key (3 consecutive); resets locked out")
    assert messages[3].startswith("kill switch reset refused: locked out for another")


# --- the audit trail: every engage and reset, in the log and in the file ---------------------------


def _engage_by_drawdown(b: TradingCircuitBreakers, p: FakeProvider) -> None:
    b.check_now()
    p.total_value, p.max_drawdown = D(880_000), D(-12)
    b.check_now()


PATHS: List[
    Tuple[str, Callable[[TradingCircuitBreakers, FakeProvider], object], Dict[str, Any], str, Optional[str]]
] = [
    # (id, action after setup, config, expected last event, expected actor)
    ("drawdown", _engage_by_drawdown, {}, "kill_switch_engaged", "circuit_breakers"),
    ("manual", lambda b, p: b.engage_kill_switch("risk officer", actor="bob"), {}, "kill_switch_engaged", "bob"),
    ("manual-no-actor", lambda b, p: b.engage_kill_switch("risk officer"), {}, "kill_switch_engaged", "manual"),
    (
        "reset-with-key",
        lambda b, p: (b.engage_kill_switch("x"), b.reset_kill_switch(RESET_KEY, actor="alice")),
        {},
        "kill_switch_reset",
        "alice",
    ),
    (
        "reset-by-name",
        lambda b, p: (b.engage_kill_switch("x"), b.reset_breaker("max_drawdown")),
        {"require_manual_reset": False},
        "kill_switch_reset",
        None,
    ),
    (
        "refused-wrong-key",
        lambda b, p: (b.engage_kill_switch("x"), b.reset_kill_switch(WRONG_KEY, actor="eve")),
        {},
        "kill_switch_reset_refused",
        "eve",
    ),
]


def _locked_out(b: TradingCircuitBreakers, p: FakeProvider) -> None:
    b.engage_kill_switch("x")
    b.reset_kill_switch(WRONG_KEY, actor="eve")
    with pytest.raises(KillSwitchError):
        b.reset_kill_switch(RESET_KEY, actor="eve")


PATHS.append(("refused-locked-out", _locked_out, {"reset_max_attempts": 1}, "kill_switch_reset_refused", "eve"))


Path_ = Tuple[Callable[[TradingCircuitBreakers, FakeProvider], object], Dict[str, Any], str, Optional[str]]


@pytest.mark.parametrize("with_file", [True, False], ids=["file", "log-only"])
@pytest.mark.parametrize("path", [p[1:] for p in PATHS], ids=[p[0] for p in PATHS])
def test_every_engage_and_reset_is_audited(
    make_breakers: MakeBreakers, tmp_path: Path, caplog: pytest.LogCaptureFixture, path: Path_, with_file: bool
) -> None:
    action, config, event, actor = path
    state_path = tmp_path / "state.json" if with_file else None
    breakers = make_breakers(reset_key=RESET_KEY, state_path=state_path, **config)
    with caplog.at_level(logging.WARNING, logger="circuit_breakers.audit"):
        action(breakers, breakers.provider)  # type: ignore[arg-type]
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "circuit_breakers.audit"]
    assert logged, "nothing was audited in the log"
    last = logged[-1]
    assert (last["event"], last["actor"]) == (event, actor)
    assert last["time"] == breakers._clock.now().isoformat()  # when (the ManualClock's wall time)
    assert last["reason"]  # why
    assert (last["pid"], last["host"]) == (os.getpid(), socket.gethostname())  # where from
    if state_path is not None:
        assert AuditLog.read(f"{state_path}.audit.jsonl") == logged  # the file holds the same entries
    else:
        assert list(tmp_path.iterdir()) == []
    for entry in logged:
        assert RESET_KEY not in json.dumps(entry)
        assert WRONG_KEY not in json.dumps(entry)
