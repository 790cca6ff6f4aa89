"""The real headless Chromium the browser tests drive (Debian's chromium-headless-shell, never a
download): the one list of names it goes by and how to get it, and a small Chrome DevTools Protocol
client over websocket-client that opens a page, runs script in it, collects console errors, uncaught
exceptions and dialogs (an alert() from injected markup would open one), and takes screenshots.

    python -m tests.browser                       # its path, or how to install it (exit 1); .ci/run uses it
    with Chromium() as tab:
        tab.open("http://127.0.0.1:8765/")        # waits for the load event
        tab.eval("document.title")
        tab.errors                                # console errors and exceptions seen so far

Tests that need it call `require_browser()`: a skip that says how to get it, or a failure where
SAE_REQUIRE_CHROMIUM is set (CI installs the browser, so a missing one there is a fault, not a skip).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# Debian's small headless-only package first; then the full browsers, which run headless too.
NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
HOW_TO_GET = (
    "no headless Chromium (looked for $SAE_CHROMIUM, " + ", ".join(NAMES) + "): install it with "
    "`sudo apt-get install chromium-headless-shell` (Debian/Ubuntu) or any Chromium"
)
WAIT_S = 30.0  # the longest a page load or a wait_for may take (a bound, not a timing check)


def find_browser() -> str | None:
    """$SAE_CHROMIUM when it names a file, else the first of NAMES on PATH, else None."""
    chosen = os.environ.get("SAE_CHROMIUM")
    if chosen and Path(chosen).is_file():
        return chosen
    return next((path for path in map(shutil.which, NAMES) if path), None)


def require_browser() -> str:
    """The browser's path; without one, skip saying how to get it (fail under SAE_REQUIRE_CHROMIUM)."""
    import pytest

    found = find_browser()
    if found is None:
        if os.environ.get("SAE_REQUIRE_CHROMIUM"):
            pytest.fail(HOW_TO_GET)
        pytest.skip(HOW_TO_GET)
    return found


def _signal_group(pgid: int, sig: int) -> bool:
    """Send sig to a process group; False when no member of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


class Chromium:
    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.width, self.height = width, height
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self._ids = itertools.count(1)

    def __enter__(self) -> Chromium:
        exe = find_browser()
        if exe is None:
            raise RuntimeError(HOW_TO_GET)
        self._profile = tempfile.mkdtemp(prefix="sae-chromium-")
        try:
            return self._start(exe)
        except BaseException:
            self._stop()
            raise

    def _start(self, exe: str) -> Chromium:
        # Its own session: Chromium's helper processes (the cache writer among them) outlive the
        # main one unless the whole group is stopped, and would write into the profile after it
        # was removed (profiles left in /tmp).
        self.proc = subprocess.Popen(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        port = None
        deadline = time.monotonic() + WAIT_S
        while port is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"Chromium exited with {self.proc.returncode}")
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            port = int(m.group(1)) if m else None
        if port is None:
            raise RuntimeError("Chromium did not report its DevTools port")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        target = json.loads(urllib.request.urlopen(req, timeout=WAIT_S).read())
        import websocket  # websocket-client (the dev extra); `python -m tests.browser` runs without it

        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=WAIT_S, suppress_origin=True)
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _stop(self) -> None:
        """Close the connection, stop every process of the browser's group, remove its profile."""
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            proc = getattr(self, "proc", None)
            if proc is not None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
                _signal_group(proc.pid, signal.SIGKILL)  # helpers that outlived the main process
                proc.wait()
                deadline = time.monotonic() + WAIT_S
                while _signal_group(proc.pid, 0) and time.monotonic() < deadline:
                    time.sleep(0.05)
            shutil.rmtree(self._profile, ignore_errors=True)

    # ---- protocol ---------------------------------------------------------------------------------
    def _event(self, msg: dict) -> None:
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.errors.append("exception: " + (d.get("exception", {}).get("description") or d.get("text", "")))
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.errors.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(p.get("message", ""))
            self._send("Page.handleJavaScriptDialog", accept=True)

    def _send(self, method: str, **params) -> int:
        i = next(self._ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        return i

    def _read(self) -> dict:
        msg = json.loads(self.ws.recv())
        if "method" in msg:
            self._event(msg)
        return msg

    def call(self, method: str, **params) -> dict:
        i = self._send(method, **params)
        while True:
            msg = self._read()
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def _until_event(self, name: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self._read().get("method") == name:
                return
        raise TimeoutError(f"no {name} within {WAIT_S} s")

    # ---- what tests use ---------------------------------------------------------------------------
    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.call("Page.navigate", url=url)
        self._until_event("Page.loadEventFired")

    def eval(self, expression: str):
        """The value of a script expression in the page (promises awaited)."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression!r}: {res['exceptionDetails'].get('exception', {}).get('description')}")
        return res["result"].get("value")

    def wait_for(self, expression: str) -> object:
        """Poll a script expression until it is truthy (e.g. a fetched fragment has arrived)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"{expression!r} stayed false for {WAIT_S} s")

    def submit(self, form_selector: str) -> None:
        """Submit a form the way a click on its button does, and wait for the next page."""
        self._send(
            "Runtime.evaluate", expression=f"document.querySelector({json.dumps(form_selector)}).requestSubmit()"
        )
        self._until_event("Page.loadEventFired")

    def screenshot(self, path: Path, top: float = 0, height: float = 4000) -> Path:
        """The page from `top` down (not only the window; at most `height` px) as a PNG."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        h = min(int(size["height"]) + 1 - top, height)
        png = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": top, "width": self.width, "height": h, "scale": 1},
        )["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(png))
        return path


if __name__ == "__main__":
    found = find_browser()
    print(found or HOW_TO_GET, file=sys.stdout if found else sys.stderr)
    sys.exit(0 if found else 1)
