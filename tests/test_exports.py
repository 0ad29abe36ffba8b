"""The package namespace: __all__ lists exactly the public, non-module names."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

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


def test_redis_names_load_lazily_and_stay_out_of_all() -> None:
    code = (
        "import sys, circuit_breakers as cb\n"
        "from circuit_breakers import *\n"
        "assert 'redis' not in sys.modules, 'importing the package imported redis'\n"
        "assert cb.RedisStore.__name__ == 'RedisStore'\n"
        "assert cb.RedisCircuitBreaker.__name__ == 'RedisCircuitBreaker'\n"
        "assert cb.RedisRateLimiter.__name__ == 'RedisRateLimiter'\n"
        "assert 'redis' in sys.modules\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert not {"RedisStore", "RedisCircuitBreaker", "RedisRateLimiter"} & set(circuit_breakers.__all__)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        circuit_breakers.no_such_name  # noqa: B018
