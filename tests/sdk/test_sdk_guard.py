"""The SDK guard: a missing SDK skips its tests locally and fails them in CI."""

from __future__ import annotations

import pytest

from .conftest import sdk

MISSING = "circuit_breakers_test_no_such_sdk"


def test_a_missing_sdk_is_skipped_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        sdk(MISSING)


def test_a_missing_sdk_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"{MISSING} is missing in CI"):
        sdk(MISSING)


def test_an_installed_module_is_returned() -> None:
    assert sdk("json").dumps([]) == "[]"
