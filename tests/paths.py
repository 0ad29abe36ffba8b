"""Where the checkout is, and the environment a test's subprocess needs to import this checkout's package."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parent.parent


def env_for_subprocess() -> Dict[str, str]:
    """The current environment with this checkout first on PYTHONPATH (whatever is installed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env
