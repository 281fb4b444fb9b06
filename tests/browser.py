"""Headless chromium for the tests: a page's DOM or screenshot, or a page driven over DevTools.

Skipped when chromium is missing, except under ``CI=true`` where that fails.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from urllib.request import urlopen

import pytest

T = TypeVar("T")


def chromium() -> str:
    """Debian's chromium; skipped when missing, except under CI=true where that fails."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "chromium is not installed (apt-get install -y chromium): the page is not checked"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true: browser tests may not skip")
    pytest.skip(reason)


def headless(url: str, profile: Path, *args: str) -> str:
    """Run headless chromium on ``url`` with ``args``; return what it printed on stdout."""
    done = subprocess.run(
        [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--disable-extensions", f"--user-data-dir={profile}", *args, url],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


# DevTools' answers while the page changes document: transient, not the page's failure.
_NAVIGATING = ("Inspected target navigated or closed", "Cannot find context with specified id",
               "Execution context was destroyed")


class _Navigating(Exception):
    """Chromium answered a command while the page was navigating."""


class DevTools:
    """A headless chromium driven over the DevTools protocol (tornado's websocket client)."""

    def __init__(self, url: str, profile: Path, size: str = "1280,800") -> None:
        self.process = subprocess.Popen(
            [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
             "--disable-extensions", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             f"--window-size={size}", "--hide-scrollbars", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.profile = profile
        self._ids = itertools.count(1)
        self._socket = None

    async def connect(self) -> None:
        """Find the page's websocket (chromium writes its port to DevToolsActivePort), connect."""
        from tornado.websocket import websocket_connect

        port_file = self.profile / "DevToolsActivePort"
        await self._until(lambda: port_file.is_file() and port_file.read_text().strip(),
                          "chromium never opened its DevTools port")
        port = int(port_file.read_text().splitlines()[0])
        targets: list[dict] = []

        def page_listed() -> bool:
            try:
                with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                    targets[:] = [t for t in json.load(answer) if t["type"] == "page"]
            except OSError:  # not listening yet
                return False
            return bool(targets)

        await self._until(page_listed, "chromium lists no page")
        self._socket = await websocket_connect(targets[0]["webSocketDebuggerUrl"],
                                               max_message_size=64 << 20)

    async def call(self, method: str, **params: object) -> dict:
        """Send one DevTools command and return its result (events on the way are skipped)."""
        number = next(self._ids)
        await self._socket.write_message(json.dumps({"id": number, "method": method,
                                                     "params": params}))
        while True:
            message = await self._socket.read_message()
            assert message is not None, "chromium closed the DevTools connection"
            answer = json.loads(message)
            if answer.get("id") == number:
                error = answer.get("error", {}).get("message", "")
                if any(words in error for words in _NAVIGATING):
                    raise _Navigating(error)
                assert "error" not in answer, answer["error"]
                return answer["result"]

    async def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression in the page (asked again while it navigates)."""
        for _ in range(100):
            try:
                result = await self.call("Runtime.evaluate", expression=expression,
                                         returnByValue=True)
            except _Navigating:
                await asyncio.sleep(0.1)
                continue
            assert "exceptionDetails" not in result, result["exceptionDetails"]
            return result["result"].get("value")
        raise AssertionError(f"the page kept navigating for 10 s: {expression}")

    async def act(self, expression: str) -> None:
        """Run ``expression`` once for its effect (a click, a filter, going back).

        A navigation it starts may end the evaluation before chromium answers: that is the
        effect, not a failure; what follows checks the page it led to.
        """
        try:
            result = await self.call("Runtime.evaluate", expression=expression)
        except _Navigating:
            return
        assert "exceptionDetails" not in result, result["exceptionDetails"]

    async def wait_for(self, expression: str, what: str, seconds: float = 60) -> None:
        """Poll until ``expression`` is true in the page, for at most about ``seconds``."""

        async def holds() -> bool:
            return bool(await self.evaluate(expression))

        await self._until(holds, f"never true in {seconds:.0f} s: {what}", int(seconds * 10))

    @staticmethod
    async def _until(check, failure: str, attempts: int = 600) -> None:
        for _ in range(attempts):
            outcome = check()
            if asyncio.iscoroutine(outcome):
                outcome = await outcome
            if outcome:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(failure)

    def disconnect(self) -> None:
        """Close the websocket (inside the event loop that opened it)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def drive(self, steps: Callable[[], Awaitable[T]]) -> T:
        """Connect, run ``steps`` in an event loop, disconnect; the browser is stopped after."""

        async def session() -> T:
            await self.connect()
            try:
                return await steps()
            finally:
                self.disconnect()

        try:
            return asyncio.run(session())
        finally:
            self.close()

    def close(self) -> None:
        """Stop the browser."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
