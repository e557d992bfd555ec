#!/usr/bin/env bash
# Load the built site's quickstart page in headless Chromium and check what a reader sees: the page's
# heading and its first code block (the DOM after the page's scripts ran), plus a screenshot to look at.
#
#   scripts/check_docs_site.sh [SITE_DIR] [SCREENSHOT]   (defaults: site, site/quickstart.png)
# `make docs` builds the site and runs this. Chromium comes from Debian's `chromium-headless-shell` (or
# `chromium`) package; as root, the script installs it with apt-get when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SITE=$(cd "${1:-site}" && pwd)
SHOT=${2:-$SITE/quickstart.png}
PYTHON=${PYTHON:-.venv/bin/python}
PAGE="$SITE/quickstart/index.html"
test -f "$PAGE" || { echo "no $PAGE: build the site first (mkdocs build --strict)"; exit 1; }

find_browser() {
    for b in chromium-headless-shell chromium chromium-browser google-chrome; do
        if command -v "$b" > /dev/null; then command -v "$b"; return; fi
    done
    local shell=/usr/lib/chromium/chromium-headless-shell   # Debian's package may not link it on PATH
    if [ -x "$shell" ]; then echo "$shell"; fi
}
BROWSER=$(find_browser)
if [ -z "$BROWSER" ] && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "installing chromium-headless-shell (Debian package) for the site check"
    DEBIAN_FRONTEND=noninteractive apt-get update -q > /dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium-headless-shell > /dev/null
    BROWSER=$(find_browser)
fi
if [ -z "$BROWSER" ]; then
    echo "no Chromium found: install Debian's chromium-headless-shell (apt-get install chromium-headless-shell)"
    exit 1
fi

FLAGS=(--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1440,1400
       --virtual-time-budget=3000 --user-data-dir="$(mktemp -d)")
DOM=$(mktemp)
trap 'rm -f "$DOM"' EXIT
"$BROWSER" "${FLAGS[@]}" --dump-dom "file://$PAGE" > "$DOM" 2> /dev/null
"$BROWSER" "${FLAGS[@]}" --screenshot="$SHOT" "file://$PAGE" > /dev/null 2>&1
"$PYTHON" - "$DOM" "$SHOT" <<'PY'
import sys
from html.parser import HTMLParser
from pathlib import Path


class Page(HTMLParser):
    """The article's h1 text and the text of its code blocks (pre > code)."""

    def __init__(self):
        super().__init__()
        self.h1, self.code, self.stack = [], [], []

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)
        if tag == "h1":
            self.h1.append("")
        if tag == "code" and "pre" in self.stack[:-1]:
            self.code.append("")

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        if "h1" in self.stack:
            self.h1[-1] += data
        if "code" in self.stack and "pre" in self.stack and self.code:
            self.code[-1] += data


dom = Path(sys.argv[1]).read_text()
page = Page()
page.feed(dom)
headings = [h.replace("¶", "").strip() for h in page.h1]
assert "Quickstart" in headings, f"the quickstart page has no 'Quickstart' heading: {headings}"
assert page.code, "the quickstart page shows no code block"
assert any("PromptClassifier.from_model(" in c and "clf.fit(" in c for c in page.code), (
    "the quickstart's training example is not on the page"
)
shot = Path(sys.argv[2])
assert shot.exists() and shot.stat().st_size > 10_000, f"no screenshot at {shot}"
print(f"quickstart page ok: heading {headings[0]!r}, {len(page.code)} code blocks; screenshot {shot}")
PY
