"""The seam where durable state lives: the :class:`StateStore` protocol and its document format.

A store keeps one JSON object, the whole state of its owner, and replaces it whole on each save.
Every backend encodes through :func:`encode_state` and decodes through :func:`decode_state`, so
they accept and return exactly the same documents: JSON's own conversions apply everywhere (a
tuple comes back as a list, a non-str key as a str), and Decimals and datetimes must be converted
by the caller (to str) before saving.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Dict, NoReturn, Optional, Protocol, runtime_checkable

from circuit_breakers.errors import StateStoreError

FORMAT_VERSION = 1
"""The ``"version"`` field every stored document carries; a store refuses to load any other."""


@runtime_checkable
class StateStore(Protocol):
    """Where an owner's state document survives a restart. Implementations must be thread-safe."""

    def load(self) -> Optional[Dict[str, Any]]:
        """The stored document (a fresh copy), or None if nothing was saved yet.

        Raises StateStoreError if the stored state cannot be read or is corrupt.
        """
        ...

    def save(self, state: Mapping[str, Any]) -> None:
        """Replace the stored document atomically: a reader sees the old one or the new one, whole.

        Raises StateStoreError if ``state`` is not a JSON-serialisable mapping or cannot be written.
        """
        ...

    def describe(self) -> str:
        """Where the state lives, for messages and logs: ``"memory"``, ``"file /path/x.json"``."""
        ...


def encode_state(state: Mapping[str, Any], where: str) -> str:
    """``state`` plus ``"version"`` as one line of JSON; raises StateStoreError naming ``where`` if it cannot be."""
    if not isinstance(state, Mapping):
        raise StateStoreError(f"cannot save to {where}: state must be a mapping, got a {type(state).__name__}")
    if "version" in state:
        raise StateStoreError(f"cannot save to {where}: the top-level key 'version' is reserved for the store")
    document = {"version": FORMAT_VERSION, **state}
    try:
        return json.dumps(document, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StateStoreError(f"cannot save to {where}: state is not JSON-serialisable: {exc}") from exc


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def decode_state(text: str, where: str) -> Dict[str, Any]:
    """The document in ``text`` without its ``"version"``; raises StateStoreError naming ``where`` and the problem."""
    if not text.strip():
        raise StateStoreError(f"{where} is empty (truncated?)")
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise StateStoreError(f"{where} is not valid JSON (truncated or corrupt?): {exc}") from exc
    if not isinstance(document, dict):
        raise StateStoreError(f"{where} must hold a JSON object, found a JSON {type(document).__name__}")
    version = document.pop("version", None)
    if version is None:
        raise StateStoreError(f"{where} has no format 'version' field")
    if type(version) is not int or version != FORMAT_VERSION:
        raise StateStoreError(f"{where} has format version {version!r}; this library reads version {FORMAT_VERSION}")
    return document
