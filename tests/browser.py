"""Headless Chromium driven over the DevTools protocol on a pipe (no driver, no websocket).

Chromium's ``--remote-debugging-pipe`` reads protocol messages (JSON, each ended by a NUL byte) on
file descriptor 3 and writes its answers and events on descriptor 4. This is enough to load a
page, run JavaScript in it or in one of its frames, and take a screenshot: what the browser test
of Snakemake's HTML report needs, with nothing installed beyond Debian's ``chromium``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium with a fresh profile; use as a context manager (it is killed after)."""

    def __init__(self, binary: str, profile: Path, timeout: float = 60.0):
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict] = []
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds() -> None:  # the browser reads fd 3 and writes fd 4
            # move both ends out of the way first: either may already be fd 3 or 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser_w)]
            os.dup2(high[0], 3)  # os.dup2 makes the copy inheritable
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],  # fmt: skip
            preexec_fn=child_fds,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_browser)
        os.close(from_browser_w)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("Browser.close")
            except (BrowserError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)  # the browser and its helper processes
                self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass

    # --- the protocol ---------------------------------------------------------------------------
    def send(self, method: str, session: str | None = None, **params) -> dict:
        """Send one command and wait for its answer; raises BrowserError on a protocol error."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)
        raise BrowserError(f"{method}: no answer within {self.timeout} s")

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError("the browser closed the pipe (did it crash?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # --- pages ----------------------------------------------------------------------------------
    def open(self, url: str) -> str:
        """Open ``url`` in a new tab once it has loaded; returns the protocol session of that tab.
        (The tab starts blank and is navigated with its page events on: a script evaluated while
        the page still loads would have its context destroyed by the navigation.)"""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session)
        self.send("Runtime.enable", session)
        self._events.clear()
        self.send("Page.navigate", session, url=url)
        self.wait_event("Page.loadEventFired", session)
        return session

    def wait_event(self, method: str, session: str) -> dict:
        """The first event ``method`` of the tab ``session`` since the last command, or the next."""
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            if time.monotonic() > deadline:
                raise BrowserError(f"no {method} within {self.timeout} s")
            self._events.append(self._read())

    def evaluate(self, session: str, expression: str, context: int | None = None):
        """The value of a JavaScript expression (a promise is awaited); raises on an exception."""
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        if context is not None:
            params["contextId"] = context
        result = self.send("Runtime.evaluate", session, **params)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error: {text}")
        return result["result"].get("value")

    def frame_context(self, session: str, url_prefix: str) -> int:
        """An execution context in the first child frame whose URL starts with ``url_prefix``."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            tree = self.send("Page.getFrameTree", session)["frameTree"]
            for child in tree.get("childFrames", []):
                if child["frame"].get("url", "").startswith(url_prefix):
                    world = self.send(
                        "Page.createIsolatedWorld", session, frameId=child["frame"]["id"]
                    )
                    return world["executionContextId"]
            time.sleep(0.1)
        raise BrowserError(f"no frame with a URL starting {url_prefix!r}")

    def screenshot(self, session: str, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", session, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path
