"""The package namespace: __all__ lists exactly the public, non-module names."""

from __future__ import annotations

import types

import circuit_breakers


def test_all_matches_public_namespace() -> None:
    included_private = {"__version__"}
    public = {
        name
        for name, value in vars(circuit_breakers).items()
        if (not name.startswith("_") or name in included_private) and not isinstance(value, types.ModuleType)
    }
    assert set(circuit_breakers.__all__) == public


def test_every_name_in_all_exists() -> None:
    missing = [name for name in circuit_breakers.__all__ if not hasattr(circuit_breakers, name)]
    assert missing == []


def test_all_has_no_duplicates() -> None:
    assert len(circuit_breakers.__all__) == len(set(circuit_breakers.__all__))


def test_version_is_a_string() -> None:
    assert isinstance(circuit_breakers.__version__, str)
    assert circuit_breakers.__version__
