#!/usr/bin/env bash
# The built site's Interpretation page in headless Chromium, as the committed screenshot
# docs/assets/screenshots/interpretation.png (issue #15: the page must render well as built).
#   bash docs/study/screenshot.sh            (CHROMIUM=<binary> picks another browser)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
CHROMIUM="${CHROMIUM:-$("${PY:-.venv/bin/python}" -m tests.browser)}"  # tests/browser.py: the names it goes by
OUT=docs/assets/screenshots
SITE="$(mktemp -d)"
trap 'rm -rf "$SITE"' EXIT
"${PY:-.venv/bin/python}" -m mkdocs build --strict --quiet --site-dir "$SITE/site"
mkdir -p "$OUT"
# A desktop window; the page is read from disk (file://), as a user opens the built site.
PAGE="$SITE/site/interpretation/index.html"
CHROME=("$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=5000)
shot() {  # shot <png name> <height>: the page's top <height> pixels at 1280 wide
  "${CHROME[@]}" --window-size=1280,"$2" --screenshot="$OUT/$1" "file://$PAGE" 2>/dev/null
}
# The page's full height at this width: a copy of it that writes its laid-out height into the DOM.
sed 's|</body>|<script>document.body.dataset.height = document.documentElement.scrollHeight</script></body>|' \
  "$PAGE" > "${PAGE%.html}-height.html"
HEIGHT=$("${CHROME[@]}" --window-size=1280,1600 --dump-dom "file://${PAGE%.html}-height.html" 2>/dev/null |
  grep -o 'data-height="[0-9]*"' | grep -o '[0-9]*')
shot interpretation.png 1600            # what a reader sees first
shot interpretation-full.png "$HEIGHT"  # the whole page (headless Chromium cannot scroll to an anchor first)
echo "wrote $OUT/interpretation.png and $OUT/interpretation-full.png (1280 x $HEIGHT)"
