"""A state store that lives and dies with the process: for tests, simulations and single runs."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Dict, Optional

from circuit_breakers.stores.base import decode_state, encode_state


class MemoryStore:
    """Keeps the document in memory, encoded as JSON text. Thread-safe.

    Storing the encoded text makes every save and load a deep copy, so neither the saved mapping
    nor a loaded one can change what is stored, and it accepts and returns exactly what
    :class:`~circuit_breakers.stores.FileStore` does.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _text
        self._text: Optional[str] = None

    def load(self) -> Optional[Dict[str, Any]]:
        """A fresh copy of the stored document, or None if nothing was saved yet."""
        with self._lock:
            text = self._text
        return None if text is None else decode_state(text, "memory store")

    def save(self, state: Mapping[str, Any]) -> None:
        """Replace the document; raises StateStoreError if ``state`` is not a JSON-serialisable mapping."""
        text = encode_state(state, "memory store")
        with self._lock:
            self._text = text

    def describe(self) -> str:
        return "memory"

    def __repr__(self) -> str:
        return "MemoryStore()"
