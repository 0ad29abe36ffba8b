"""The peer libraries, imported if they can be: a missing peer is skipped with a note, never faked."""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional, Tuple

# distribution name -> modules to import (the first is the one the cases use)
PEER_MODULES: Dict[str, Tuple[str, ...]] = {
    "pybreaker": ("pybreaker",),
    "circuitbreaker": ("circuitbreaker",),
    "limits": ("limits", "limits.storage", "limits.strategies"),
    "pyrate-limiter": ("pyrate_limiter",),
}


@dataclass(frozen=True)
class Peer:
    """A peer library: its module when importable, otherwise why it is skipped."""

    name: str
    module: Any = None
    version: Optional[str] = None
    reason: Optional[str] = None

    @property
    def available(self) -> bool:
        return self.module is not None

    def skip_reason(self) -> str:
        return f"skipped: {self.name} {self.reason}"

    def to_json(self) -> Dict[str, Any]:
        return {"available": self.available, "version": self.version, "reason": self.reason}


def load_peer(name: str, disabled: Iterable[str] = ()) -> Peer:
    if name in disabled:
        return Peer(name, reason="disabled with --without")
    modules = PEER_MODULES[name]
    try:
        imported = [importlib.import_module(module) for module in modules]
    except Exception as exc:  # ImportError, or a broken install raising anything at import
        return Peer(name, reason=f"not importable ({type(exc).__name__}: {exc})")
    try:
        version: Optional[str] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(imported[0], "__version__", None)
    return Peer(name, imported[0], version)


def load_peers(disabled: Iterable[str] = ()) -> Dict[str, Peer]:
    disabled = set(disabled)
    return {name: load_peer(name, disabled) for name in PEER_MODULES}
