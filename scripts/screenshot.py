#!/usr/bin/env python
"""The README's screenshot, taken anew from the running dashboard (so it never shows an earlier model or layout).

    python scripts/screenshot.py                       # the Paper claims page -> docs/screenshot.png
    python scripts/screenshot.py --page pruning --out /tmp/pruning.png

Starts `dtviz serve` (the README's launch command) on a free local port, opens the page in Debian's headless
Chromium through selenium at 1600×1000 (the binary and driver paths are given explicitly: nothing is downloaded),
waits until the app has stopped running, and saves the first screen.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dtviz.serving.local import CHROMEDRIVER, CHROMIUM, chromium_driver, free_port, wait_healthy, wait_idle  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--page", default="claims", help="the page's URL path (default: claims)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "screenshot.png"))
    parser.add_argument("--size", default="1600,1000", help="window width,height in CSS pixels")
    args = parser.parse_args(argv)
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        raise SystemExit(f"screenshot: needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "dtviz", "serve", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile = tempfile.mkdtemp(prefix="dtviz-shot-")
    try:
        wait_healthy(url, proc)
        driver = chromium_driver(profile, size=args.size)
        try:
            driver.get(f"{url}/{args.page}")
            time.sleep(3)
            wait_idle(driver, timeout=240, steady=3.0)
            time.sleep(2)  # plotly's first paint
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(profile, ignore_errors=True)
    print(f"screenshot: wrote {os.path.relpath(args.out, ROOT)} ({args.page})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
