"""Check an xai-audit HTML report page in headless Chromium.

The page comes from `xai-audit html REPORT.json -o page.html` (or
`xai-audit run ... --html page.html`). The script opens it in headless
Chromium, driven through the Chrome DevTools protocol, and

- takes a full-page screenshot at 1280 px (desktop) and 390 px (phone,
  mobile emulation): `DIR/page-1280.png` and `DIR/page-390.png`;
- fails on any console error: console.error / console.assert, an uncaught
  exception, a Log entry of level error (where Content-Security-Policy
  violations and images that fail to decode show) or a failed network load;
- loads the page `--runs` times at 1280 px and reports the median of
  (loadEventEnd - startTime) from the Navigation Timing API, read with
  Runtime.evaluate (DevTools' evaluate is not bound by the page's CSP, which
  forbids scripts; if it still does not answer, the wall time from
  Page.navigate to Page.loadEventFired is used instead); fails when the
  median exceeds `--max-load-ms`;
- warns (without failing) when the page scrolls sideways at 390 px, naming
  the elements that stick out.

Why the pipe transport: Chromium started with `--remote-debugging-pipe`
speaks the DevTools protocol over file descriptors 3 (it reads) and 4 (it
writes), one JSON message per NUL-terminated chunk. That needs only
`subprocess` and `os.pipe`, so the script runs on the Python 3 standard
library alone -- no websocket package -- on a fresh Debian with `chromium`
installed (`apt-get install chromium`).

    python3 examples/html_check.py page.html
    python3 examples/html_check.py page.html --out target/html-check \
        --max-load-ms 1000 --runs 3 --chromium /usr/bin/chromium

The browser is `--chromium PATH`, else `$CHROMIUM`, else the first of
chromium, chromium-browser, google-chrome on PATH. Exit status: 0 when the
page passes, 1 when a check fails (or Chromium hangs or dies), 2 when the
page or the browser cannot be found.
"""

import argparse
import base64
import fcntl
import json
import os
import pathlib
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

WIDTHS = (1280, 390)
LOAD_WIDTH = 1280
PHONE_WIDTH = 390
VIEWPORT_HEIGHT = {1280: 800, 390: 844}
WAIT_S = 30.0
# Chromium cannot render a screenshot taller than its largest texture.
MAX_SHOT_PX = 16384


class CheckError(Exception):
    """Chromium hung, died or answered with an error: the check cannot go on."""


# ---------------------------------------------------------------- browser


def find_chromium(explicit):
    """The browser binary: `--chromium`, `$CHROMIUM`, or the first on PATH."""
    for cand in (explicit, os.environ.get("CHROMIUM")):
        if cand:
            path = shutil.which(cand) or (cand if os.path.isfile(cand) else None)
            if path is None:
                print(f"html_check: browser {cand!r} not found", file=sys.stderr)
                sys.exit(2)
            return path
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    print(
        "html_check: no Chromium found: install it (Debian: apt-get install "
        "chromium) or pass --chromium PATH or set $CHROMIUM",
        file=sys.stderr,
    )
    sys.exit(2)


class Browser:
    """Headless Chromium and its DevTools pipe.

    Messages out go to Chromium's fd 3, messages in come from its fd 4; each
    is JSON ended by a NUL byte. Events read while waiting for something
    else are queued for `wait_event` and passed to `on_event` as they come.
    """

    def __init__(self, binary, on_event):
        self.on_event = on_event
        self.profile = tempfile.mkdtemp(prefix="html-check-profile-")
        self.log_path = os.path.join(self.profile, "chromium-stderr.log")
        self.next_id = 0
        self.buf = b""
        self.pending = []  # events not yet taken by wait_event
        # Chromium reads fd 3 (we write to_w) and writes fd 4 (we read from_r).
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()

        def child_fds():
            # Move the pipe ends to 3 and 4 without clobbering either on the way.
            hi_r = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
            hi_w = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)
            os.close(hi_r)
            os.close(hi_w)

        args = [
            binary,
            "--headless=new",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-pipe",
        ]
        if os.geteuid() == 0:
            args.append("--no-sandbox")
        args.append("about:blank")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(3, 4),
                preexec_fn=child_fds,
                start_new_session=True,  # its helpers share its process group
            )
        os.close(to_r)
        os.close(from_w)
        self.w = to_w
        self.r = from_r
        os.set_blocking(self.r, False)

    # -- transport

    def _send(self, msg):
        data = json.dumps(msg).encode() + b"\0"
        deadline = time.monotonic() + WAIT_S
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckError("Chromium stopped reading its DevTools pipe")
            _, ready, _ = select.select([], [self.w], [], left)
            if ready:
                try:
                    n = os.write(self.w, view)
                except BrokenPipeError:
                    raise CheckError(self._died("closed its DevTools pipe")) from None
                view = view[n:]

    def _read_one(self, deadline, what):
        """The next message from Chromium, waiting at most until `deadline`."""
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckError(f"no answer from Chromium in {WAIT_S:.0f} s ({what})")
            ready, _, _ = select.select([self.r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise CheckError(self._died(f"closed its DevTools pipe ({what})"))
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def _died(self, what):
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        state = f"exited with status {code}" if code is not None else "is still running"
        return f"Chromium {what}; it {state}"

    def _take(self, msg):
        """Hand an event to on_event and queue it."""
        self.on_event(msg)
        self.pending.append(msg)

    # -- protocol

    def call(self, method, params=None, session=None, timeout=WAIT_S):
        """Sends a command and returns its result, raising on a protocol error."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._send(msg)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_one(deadline, method)
            if "id" not in reply:
                self._take(reply)
            elif reply["id"] == self.next_id:
                if "error" in reply:
                    raise CheckError(f"{method} failed: {reply['error'].get('message')}")
                return reply.get("result", {})

    def wait_event(self, method, session=None, timeout=WAIT_S):
        """The first queued or coming event `method` (of `session`)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.pending):
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return self.pending.pop(i)
            msg = self._read_one(deadline, f"waiting for {method}")
            if "id" not in msg:
                self._take(msg)

    def drain(self, quiet_s=0.2):
        """Reads what Chromium still has to say (late console messages)."""
        end = time.monotonic() + quiet_s
        while time.monotonic() < end:
            ready, _, _ = select.select([self.r], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                break
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                break
            self.buf += chunk
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" not in msg:
                    self._take(msg)

    def close(self):
        """Kills Chromium (its whole process group) and removes the profile."""
        for fd in (self.w, self.r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        shutil.rmtree(self.profile, ignore_errors=True)

    def stderr_tail(self, lines=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


# ---------------------------------------------------------------- console


class Console:
    """Errors the page raised, from the DevTools events as they come."""

    def __init__(self):
        self.errors = []  # (kind, text), in order
        self.urls = {}  # requestId -> URL, to name failed loads

    def __call__(self, msg):
        method = msg.get("method")
        p = msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(arg_text(a) for a in p.get("args", []))
            self.errors.append((f"console.{p['type']}", args))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = d.get("exception", {}).get("description") or d.get("text", "")
            self.errors.append(("exception", f"{text} at {d.get('url', '?')}:{d.get('lineNumber', '?')}"))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            where = f" ({e['url']})" if e.get("url") else ""
            self.errors.append((f"log/{e.get('source', '?')}", e.get("text", "") + where))
        elif method == "Network.requestWillBeSent":
            self.urls[p.get("requestId")] = p.get("request", {}).get("url", "?")
        elif method == "Network.loadingFailed":
            url = self.urls.get(p.get("requestId"), "?")
            why = p.get("blockedReason") or p.get("corsErrorStatus", {}).get("corsError") or ""
            text = f"{p.get('type', '?')} {url}: {p.get('errorText') or 'failed'}"
            if why:
                text += f" (blocked: {why})"
            self.errors.append(("network", text))
        elif method in ("Inspector.targetCrashed", "Target.targetCrashed"):
            self.errors.append(("crash", "the page's renderer crashed"))

    def distinct(self):
        """Each error once, with how many times it came, in first-seen order."""
        counts = {}
        for e in self.errors:
            counts[e] = counts.get(e, 0) + 1
        return list(counts.items())


def arg_text(remote_object):
    if "value" in remote_object:
        v = remote_object["value"]
        return v if isinstance(v, str) else json.dumps(v)
    return remote_object.get("description", remote_object.get("type", "?"))


# ---------------------------------------------------------------- page steps


def open_page(browser):
    """A fresh tab, attached in flat mode, with the domains we listen to."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable", session=session)
    return session


def set_width(browser, session, width):
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": VIEWPORT_HEIGHT[width],
            "deviceScaleFactor": 1,
            "mobile": width == PHONE_WIDTH,
        },
        session=session,
    )
    # Overlay-like: the page gets the full width, as on a phone, and the
    # desktop screenshot is the whole 1280 px.
    browser.call("Emulation.setScrollbarsHidden", {"hidden": True}, session=session)


def navigate(browser, session, url):
    """Loads `url`, waits for its load event; returns the wall time in ms."""
    browser.pending = [ev for ev in browser.pending if ev.get("method") != "Page.loadEventFired"]
    t0 = time.perf_counter()
    res = browser.call("Page.navigate", {"url": url}, session=session)
    if res.get("errorText"):
        raise CheckError(f"navigation to {url} failed: {res['errorText']}")
    browser.wait_event("Page.loadEventFired", session=session)
    return (time.perf_counter() - t0) * 1000.0


def evaluate(browser, session, expression):
    """The value of a JavaScript expression in the page, or None if it fails."""
    res = browser.call(
        "Runtime.evaluate",
        {"expression": expression, "returnByValue": True},
        session=session,
    )
    if "exceptionDetails" in res:
        return None
    return res.get("result", {}).get("value")


def navigation_load_ms(browser, session):
    """loadEventEnd - startTime from Navigation Timing, or None if unreadable.

    The load event may still be running when Page.loadEventFired arrives, so
    loadEventEnd can read 0 for a moment: poll it briefly.
    """
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        raw = evaluate(browser, session, "JSON.stringify(performance.getEntriesByType('navigation')[0])")
        if not isinstance(raw, str):
            return None
        entry = json.loads(raw)
        if entry.get("loadEventEnd", 0) > 0:
            return entry["loadEventEnd"] - entry.get("startTime", 0.0)
        time.sleep(0.02)
    return None


def screenshot(browser, session, path):
    """A full-page PNG at `path`; returns its pixel size (width, height)."""
    size = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
    width, height = size["width"], size["height"]
    # Chromium cannot capture more than MAX_SHOT_PX pixels in one piece: a
    # taller page is captured whole, scaled down to fit.
    scale = min(1.0, MAX_SHOT_PX / height) if height > 0 else 1.0
    if scale < 1.0:
        print(f"note: page is {height:.0f} px tall; its screenshot is scaled by {scale:.2f}")
    shot = browser.call(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": scale},
        },
        session=session,
        timeout=2 * WAIT_S,
    )
    data = base64.b64decode(shot["data"])
    path.write_bytes(data)
    return png_size(data)


# The page's gallery images load lazily (so that they do not hold up the
# load event); a full-page screenshot needs them all, decoded.
LOAD_ALL_IMAGES_JS = r"""
Promise.all([...document.images].map((i) => {
  i.loading = 'eager';
  return i.decode().catch(() => null);
})).then(() => document.images.length)
"""


def load_all_images(browser, session):
    """Makes every lazy <img> load now and waits until each is decoded."""
    browser.call(
        "Runtime.evaluate",
        {"expression": LOAD_ALL_IMAGES_JS, "awaitPromise": True, "returnByValue": True},
        session=session,
    )


def png_size(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return (0, 0)
    return struct.unpack(">II", data[16:24])


# <img> elements that finished loading without a picture. Chromium logs
# nothing when a data: image fails to decode, so ask the page.
BROKEN_IMAGES_JS = r"""
JSON.stringify([...document.images]
  .filter((i) => i.complete && i.naturalWidth === 0)
  .map((i) => (i.id ? '#' + i.id + ' ' : '') + (i.currentSrc || i.src || '(no src)').slice(0, 80)))
"""


def broken_images(browser, session, console):
    """Adds each <img> that failed to load or decode to the console's errors."""
    raw = evaluate(browser, session, BROKEN_IMAGES_JS)
    if not isinstance(raw, str):
        console.errors.append(("image", "could not list the page's images"))
        return
    for src in json.loads(raw):
        console.errors.append(("image", f"failed to load or decode: {src}"))


# Elements sticking out of the layout viewport that are not inside a
# container that clips or scrolls them, keeping only those whose parent
# still fits (the culprits, not their ancestors and descendants).
OVERFLOW_JS = r"""
(() => {
  const de = document.documentElement;
  const vw = de.clientWidth;
  const name = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    if (typeof el.className === 'string' && el.className.trim())
      s += '.' + el.className.trim().split(/\s+/).join('.');
    const home = el.parentElement && el.parentElement.closest('[id]');
    if (home && home !== el) s += ' in #' + home.id;
    return s;
  };
  const clipped = (el) => {
    for (let a = el.parentElement; a && a !== de && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return true;
    }
    return false;
  };
  const sticks = (el) => el.getBoundingClientRect().right > vw + 0.5;
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (!sticks(el) || clipped(el)) continue;
    const p = el.parentElement;
    if (p && p !== document.body && sticks(p)) continue;
    const r = el.getBoundingClientRect();
    out.push({el: name(el), width: Math.round(r.width), right: Math.round(r.right)});
  }
  out.sort((a, b) => b.right - a.right);
  return JSON.stringify({scrollWidth: de.scrollWidth, clientWidth: vw,
                         innerWidth: window.innerWidth, culprits: out.slice(0, 8)});
})()
"""


def overflow_check(browser, session, width):
    """Warns when the page scrolls sideways; returns the warning or None."""
    raw = evaluate(browser, session, OVERFLOW_JS)
    if not isinstance(raw, str):
        return f"could not measure horizontal overflow at {width} px"
    o = json.loads(raw)
    # With mobile emulation Chromium may zoom out to fit wide content, which
    # widens innerWidth; the layout viewport (clientWidth) stays the device's.
    limit = min(o["innerWidth"], o["clientWidth"])
    if o["scrollWidth"] <= limit:
        return None
    lines = [
        f"page scrolls sideways at {width} px: scrollWidth {o['scrollWidth']} > "
        f"viewport {limit} (innerWidth {o['innerWidth']}, clientWidth {o['clientWidth']})"
    ]
    for c in o["culprits"]:
        lines.append(f"    {c['el']}: {c['width']} px wide, right edge at {c['right']} px")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def check(browser, console, page, out, runs):
    """Runs the checks; returns (load ms per run, how measured, shots, warnings)."""
    url = page.resolve().as_uri()
    session = open_page(browser)
    warnings = []
    shots = []

    set_width(browser, session, LOAD_WIDTH)
    loads = []
    source = "Navigation Timing (loadEventEnd - startTime)"
    for _ in range(runs):
        wall = navigate(browser, session, url)
        timed = navigation_load_ms(browser, session)
        if timed is None:
            source = "wall time Page.navigate -> Page.loadEventFired (Navigation Timing unreadable)"
        loads.append((timed, wall))
    if any(t is None for t, _ in loads):
        loads = [w for _, w in loads]
    else:
        loads = [t for t, _ in loads]

    for width in WIDTHS:
        if width != LOAD_WIDTH:
            set_width(browser, session, width)
            navigate(browser, session, url)
        load_all_images(browser, session)
        path = out / f"page-{width}.png"
        shots.append((path, screenshot(browser, session, path)))
        if width == LOAD_WIDTH:
            broken_images(browser, session, console)
        if width == PHONE_WIDTH:
            w = overflow_check(browser, session, width)
            if w:
                warnings.append(w)
    browser.drain()
    return loads, source, shots, warnings


def parse_args():
    ap = argparse.ArgumentParser(
        description="Check an xai-audit HTML page in headless Chromium: screenshots at "
        "1280 and 390 px, console errors, load time, sideways overflow on phones.",
        epilog="Exit status: 0 passed, 1 a check failed (or Chromium hung), 2 page or browser not found.",
    )
    ap.add_argument("page", type=pathlib.Path, help="the HTML page to check")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("target/html-check"),
                    help="folder for the screenshots (default: target/html-check)")
    ap.add_argument("--max-load-ms", type=float, default=1000.0,
                    help="fail when the median load time exceeds this (default: 1000)")
    ap.add_argument("--runs", type=int, default=3, help="page loads to time at 1280 px (default: 3)")
    ap.add_argument("--chromium", help="browser binary (default: $CHROMIUM, else chromium, "
                    "chromium-browser or google-chrome on PATH)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    return args


def main():
    args = parse_args()
    if not args.page.is_file():
        print(f"html_check: no page at {args.page}", file=sys.stderr)
        return 2
    binary = find_chromium(args.chromium)
    args.out.mkdir(parents=True, exist_ok=True)

    console = Console()
    browser = Browser(binary, console)
    try:
        loads, source, shots, warnings = check(browser, console, args.page, args.out, args.runs)
    except CheckError as e:
        print(f"html_check: {e}", file=sys.stderr)
        tail = browser.stderr_tail()
        if tail:
            print("Chromium's last words:\n" + tail, file=sys.stderr)
        return 1
    finally:
        browser.close()

    size = args.page.stat().st_size
    median = statistics.median(loads)
    errors = console.distinct()
    print(f"page:     {args.page} ({size} bytes, {size / 1024:.1f} KiB)")
    print(f"browser:  {binary}")
    print(f"load:     {', '.join(f'{ms:.1f}' for ms in loads)} ms; median {median:.1f} ms "
          f"(limit {args.max_load_ms:g} ms) [{source}]")
    for path, (w, h) in shots:
        print(f"shot:     {path} ({w}x{h} px)")
    for w in warnings:
        print(f"warning:  {w}")
    print(f"errors:   {len(errors)} distinct, {len(console.errors)} in all")
    for (kind, text), n in errors:
        times = f" (x{n})" if n > 1 else ""
        print(f"  error [{kind}]{times}: {text}")

    failures = []
    if errors:
        failures.append(f"{len(errors)} console error(s)")
    if median > args.max_load_ms:
        failures.append(f"median load {median:.1f} ms exceeds {args.max_load_ms:g} ms")
    print("FAIL: " + "; ".join(failures) if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
