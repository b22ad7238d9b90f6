"""Check a report page in a real headless Chromium: it renders, has no console errors, every image loads.

The page's own script (see `searchprobe.report.html`) writes ``data-images-total``,
``data-images-ok`` and ``data-images-broken`` on ``<body>`` after the load event; ``--dump-dom``
returns the DOM after scripts ran, so those attributes are read back from it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from searchprobe.errors import InputError

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
          "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars")


def find_chromium() -> str | None:
    """Path of a Chromium-family browser on PATH, or None."""
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class BrowserCheck:
    """What headless Chromium saw on the page."""

    ok: bool
    images_total: int
    images_ok: int
    broken_images: list[int]
    console_errors: list[str] = field(default_factory=list)
    screenshot: str | None = None
    browser: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def check_in_browser(html_path: str | os.PathLike, screenshot: str | os.PathLike | None = None,
                     window: tuple[int, int] = (1200, 3000), timeout_s: float = 120.0) -> BrowserCheck:
    """Load `html_path` (file://) in headless Chromium and report image loading and console errors."""
    browser = find_chromium()
    if browser is None:
        raise InputError("no Chromium found on PATH (install Debian's package: apt-get install -y chromium)")
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise InputError(f"no report at {html_path}")
    url = html_path.as_uri()
    with tempfile.TemporaryDirectory(prefix="sp-chromium-") as profile:
        base = [browser, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}",
                "--virtual-time-budget=10000"]
        dom = subprocess.run([*base, "--enable-logging=stderr", "--v=0", "--dump-dom", url], capture_output=True,
                             text=True, timeout=timeout_s)
        if screenshot is not None:
            subprocess.run([*base, f"--screenshot={Path(screenshot).resolve()}", url], capture_output=True, text=True,
                           timeout=timeout_s)
    body = re.search(r"<body([^>]*)>", dom.stdout)
    attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(1))) if body else {}
    total = int(attrs.get("data-images-total", -1))
    good = int(attrs.get("data-images-ok", -1))
    broken = [int(x) for x in attrs.get("data-images-broken", "").split(",") if x.strip()]
    errors = [line for line in dom.stderr.splitlines()
              if "CONSOLE" in line and ("Uncaught" in line or "Error" in line or ":ERROR:" in line)]
    errors += [line for line in dom.stderr.splitlines() if "Failed to load resource" in line]
    ok = attrs.get("data-check-done") == "1" and total > 0 and good == total and not broken and not errors
    shot = str(Path(screenshot).resolve()) if screenshot is not None and Path(screenshot).is_file() else None
    return BrowserCheck(ok, total, good, broken, errors, shot, browser)
