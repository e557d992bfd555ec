"""Render an HTML report in headless Chromium and check the screenshot is not blank.

    python scripts/check_report_render.py runs/x/report/report.html --screenshot shot.png [--json]

Finds Debian's `chromium` (or chromium-headless-shell, chromium-browser, google-chrome; $CHROMIUM overrides),
takes a full-width screenshot of the page with JavaScript and the network off, and measures it: the share of
pixels that differ from the page background, the number of distinct colours and the number of rows with
content. Exit code 0 when the page rendered (not blank), 1 when blank, 3 when no browser is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = (
    "chromium",
    "chromium-headless-shell",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
)


def find_browser() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        return env if shutil.which(env) or Path(env).is_file() else None
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(html: Path, out: Path, *, width: int = 1280, height: int = 3000, timeout: int = 120) -> Path:
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium found: apt-get install chromium (or set $CHROMIUM)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-javascript",
            "--no-first-run", f"--user-data-dir={profile}", f"--window-size={width},{height}",
            "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",  # nothing may load from the network
            f"--screenshot={out.resolve()}", html.resolve().as_uri(),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not out.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot (exit {proc.returncode}): {proc.stderr[-800:]}")
    return out


def measure(png: Path) -> dict:
    """How much of the screenshot is not the background colour (the most common one)."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    differs = np.any(pixels != background, axis=1)
    rows = differs.reshape(Image.open(png).size[1], -1).any(axis=1)
    return {
        "size": list(Image.open(png).size),
        "non_background_share": float(differs.mean()),
        "distinct_colours": int(len(colours)),
        "rows_with_content_share": float(rows.mean()),
        "background": [int(c) for c in background],
    }


def crop_to_content(png: Path, margin: int = 24) -> Path:
    """Cut the background rows below the page's last content (the window is taller than most pages)."""
    import numpy as np
    from PIL import Image

    image = Image.open(png).convert("RGB")
    pixels = np.asarray(image)
    background = pixels[-1, -1]
    rows = np.flatnonzero(np.any(pixels != background, axis=(1, 2)))
    if rows.size and rows[-1] + margin < pixels.shape[0]:
        image.crop((0, 0, pixels.shape[1], int(rows[-1]) + margin)).save(png)
    return png


def is_blank(stats: dict) -> bool:
    return stats["non_background_share"] < 0.02 or stats["distinct_colours"] < 16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("html", type=Path)
    parser.add_argument("--screenshot", type=Path, default=None, help="where to keep the PNG")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=3000, help="window height: the page is shot down to it")
    parser.add_argument("--crop", action="store_true", help="cut the empty background below the page's end")
    args = parser.parse_args(argv)
    if find_browser() is None:
        print("no Chromium found: apt-get install chromium (or set $CHROMIUM)", file=sys.stderr)
        return 3
    out = args.screenshot or args.html.with_suffix(".png")
    screenshot(args.html, out, width=args.width, height=args.height)
    if args.crop:
        crop_to_content(out)
    command = shlex.join(
        ["python", "scripts/check_report_render.py", *(sys.argv[1:] if argv is None else argv)]
    )
    stats = {**measure(out), "screenshot": str(out), "browser": find_browser(), "command": command}
    stats["blank"] = is_blank(stats)
    print(json.dumps(stats, indent=2))
    return 1 if stats["blank"] else 0


if __name__ == "__main__":
    sys.exit(main())
