"""Headless Chromium for the page tests: --dump-dom, --screenshot, a PNG reader and a DevTools pipe.

Every run gets a fresh profile directory and the flags that keep Chromium off the network (it only
talks to the loopback server under test).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
TIMEOUT = 60.0


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def dump_dom(chromium: str, url: str, profile: Path, *, budget_ms: int) -> str:
    """The DOM after ``budget_ms`` of virtual time (scripts and timers run; fetches are waited for)."""
    return _run(chromium, profile, f"--virtual-time-budget={budget_ms}", "--dump-dom", url).stdout


def screenshot(chromium: str, url: str, path: Path, profile: Path, *, size: Tuple[int, int], budget_ms: int) -> None:
    """A PNG of the page in a window of ``size`` (CSS pixels)."""
    width, height = size
    _run(
        chromium,
        profile,
        f"--window-size={width},{height}",
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={path}",
        url,
    )
    assert path.is_file(), f"no screenshot at {path}"


def read_png(path: Path) -> Tuple[int, int, List[bytes]]:
    """Width, height and the unfiltered RGB(A) rows of an 8-bit, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), (depth, interlace)
    assert color in (2, 6), color  # RGB or RGBA
    step = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * step
    rows: List[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - step] if x >= step else 0
            up = previous[x]
            corner = previous[x - step] if x >= step else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line if step == 3 else b"".join(bytes(line[i : i + 3]) for i in range(0, stride, 4))))
        previous = line
    return width, height, rows


def pixel(rows: List[bytes], x: int, y: int) -> Tuple[int, int, int]:
    r, g, b = rows[y][3 * x : 3 * x + 3]
    return r, g, b


def _above_four(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class DevTools:
    """Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out; JSON messages ending in NUL).

    For what the command line cannot tell: the page's layout width in a phone-sized viewport.
    """

    def __init__(self, chromium: str, profile: Path) -> None:
        to_child, self._to_chromium = os.pipe()
        self._from_chromium, from_child = os.pipe()
        # Out of the way of 3 and 4 first, so that moving one end there cannot overwrite the other.
        to_child, from_child = (_above_four(fd) for fd in (to_child, from_child))
        # bash (dash takes only one-digit descriptors) moves the pipe ends onto the descriptors
        # Chromium expects, then becomes Chromium.
        script = f'exec "$0" "$@" 3<&{to_child} 4>&{from_child}'
        self._process = subprocess.Popen(
            ["bash", "-c", script, chromium, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}"],
            pass_fds=(to_child, from_child),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next = 0
        self._events: List[Dict[str, Any]] = []
        self._session: Optional[str] = None
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(target["targetId"] for target in targets if target["type"] == "page")
        self._session = self.call("Target.attachToTarget", targetId=page, flatten=True)["sessionId"]

    def _read(self, deadline: float, what: str) -> Dict[str, Any]:
        """The next message from Chromium, waiting at most until ``deadline``."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"no {what} within {TIMEOUT} s"
            ready, _, _ = select.select([self._from_chromium], [], [], left)
            if ready:
                chunk = os.read(self._from_chromium, 65536)
                assert chunk, "Chromium closed its DevTools pipe"
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)  # type: ignore[no-any-return]

    def call(self, method: str, *, browser: bool = False, **params: Any) -> Dict[str, Any]:
        """Send one command (to the page, or to the browser) and wait, bounded, for its answer."""
        self._next += 1
        message: Dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self._session is not None and not browser:
            message["sessionId"] = self._session
        os.write(self._to_chromium, json.dumps(message).encode("utf-8") + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._read(deadline, f"answer to {method}")
            if reply.get("id") == self._next:
                assert "error" not in reply, reply
                return reply["result"]  # type: ignore[no-any-return]
            if "method" in reply:
                self._events.append(reply)

    def wait_for(self, event: str) -> Dict[str, Any]:
        """The first event called ``event`` (one already received counts), waiting at most TIMEOUT."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for index, seen in enumerate(self._events):
                if seen["method"] == event:
                    return self._events.pop(index)
            reply = self._read(deadline, f"event {event}")
            if "method" in reply:
                self._events.append(reply)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(AssertionError):  # it may exit before it answers
            self.call("Browser.close", browser=True)
        os.close(self._to_chromium)
        os.close(self._from_chromium)
        try:
            self._process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(TIMEOUT)
