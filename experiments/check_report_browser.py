"""Open a run's report.html in headless Chromium; print JSON; exit 1 unless every image loads without errors.

    python experiments/check_report_browser.py RUN_DIR_OR_HTML [--screenshot out.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from searchprobe.report.browser import check_in_browser, find_chromium


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="a run directory (its report.html) or an HTML file")
    parser.add_argument("--screenshot", help="also write a full-page screenshot here (PNG)")
    args = parser.parse_args()
    if find_chromium() is None:
        print(json.dumps({"ok": None, "skipped": "chromium is not installed (apt-get install -y chromium)"}))
        return 0
    target = Path(args.target)
    html = target / "report.html" if target.is_dir() else target
    result = check_in_browser(html, screenshot=args.screenshot)
    print(json.dumps(result.to_dict(), indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
