"""The headless Chromium the report's browser tests (tests/test_report.py) and the docs' screenshot
script (docs/study/screenshot.sh) drive: the one list of names it goes by, and how to get it.
`python -m tests.browser` prints its path, or says how to install it and exits 1 (.ci/run uses that)."""
from __future__ import annotations

import shutil
import sys

# Debian's small headless-only package first; then the full browsers, which run headless too.
NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
HOW_TO_GET = ("no headless Chromium (looked for " + ", ".join(NAMES) + "): the report's browser tests skip; "
              "install it with `sudo apt-get install chromium-headless-shell` (Debian/Ubuntu) or any Chromium")


def find_browser() -> str | None:
    """The path of the first of NAMES on PATH, or None."""
    return next((path for path in map(shutil.which, NAMES) if path), None)


if __name__ == "__main__":
    found = find_browser()
    print(found or HOW_TO_GET, file=sys.stdout if found else sys.stderr)
    sys.exit(0 if found else 1)
