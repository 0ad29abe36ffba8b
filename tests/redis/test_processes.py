"""Several strategy processes on one real redis-server: losing the server blocks trading in every
process, and bringing it back releases them all, with no process restarted and nobody acting."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List

from tests.redis_server import RedisServer

NAMESPACE = "outage"


class Worker:
    """One ``tests.redis.worker follow`` process; every read is bounded (a thread feeds a queue)."""

    def __init__(self, server: RedisServer, namespace: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.redis.worker", "follow", server.url, namespace],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def line(self, timeout: float) -> Dict[str, Any]:
        try:
            text = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"worker {self.process.pid} said nothing within {timeout}s") from None
        return json.loads(text)

    def ask(self, command: str, timeout: float = 5.0) -> Dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.line(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self.reader.join(5)


def poll(worker: Worker, command: str, until: Callable[[Dict[str, Any]], bool], seconds: float) -> Dict[str, Any]:
    """Ask ``command`` until the answer satisfies ``until``; fails after ``seconds``. Polls another process."""
    deadline = time.monotonic() + seconds
    while True:
        answer = worker.ask(command)
        if until(answer):
            return answer
        assert time.monotonic() < deadline, f"worker {worker.process.pid} still answers {answer} after {seconds}s"
        time.sleep(0.05)


def test_killing_redis_blocks_trading_everywhere_and_restarting_it_restores_it(
    own_redis_server: RedisServer,
) -> None:
    workers: List[Worker] = []
    try:
        for _ in range(3):
            workers.append(Worker(own_redis_server, NAMESPACE))
        for worker in workers:
            assert worker.line(timeout=30)["ready"]
        for worker in workers:
            assert poll(worker, "status", lambda answer: answer["can_trade"], seconds=5)["reasons"] == []

        own_redis_server.kill()
        for worker in workers:
            # "peek" does not touch Redis: each process must find the outage by itself
            poll(worker, "peek", lambda answer: not answer["can_trade"], seconds=5)
            blocked = worker.ask("status")
            assert blocked["can_trade"] is False
            assert any(reason.startswith(f"state: redis {NAMESPACE}:") for reason in blocked["reasons"]), blocked

        own_redis_server.start()  # the same port, and the same append-only file
        for worker in workers:
            restored = poll(worker, "peek", lambda answer: answer["can_trade"], seconds=10)
            assert restored["reasons"] == []
        for worker in workers:
            assert worker.ask("status") == {"can_trade": True, "reasons": []}
    finally:
        for worker in workers:
            worker.close()
