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
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"screenshot: dtviz serve exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"screenshot: the dashboard did not answer within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--page", default="claims", help="the page's URL path (default: claims)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "screenshot.png"))
    parser.add_argument("--size", default="1600,1000", help="window width,height in CSS pixels")
    args = parser.parse_args(argv)
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        raise SystemExit(f"screenshot: needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never download a browser
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "dtviz", "serve", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile = tempfile.mkdtemp(prefix="dtviz-shot-")
    try:
        wait_healthy(url, proc)
        opts = Options()
        opts.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                     "--force-device-scale-factor=1", f"--window-size={args.size}", f"--user-data-dir={profile}"):
            opts.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
        try:
            driver.get(f"{url}/{args.page}")
            time.sleep(3)
            deadline = time.time() + 240
            while time.time() < deadline:  # until no "Running…" widget and no spinner is shown
                busy = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"], [data-testid="stSpinner"]')
                if not any(e.is_displayed() for e in busy):
                    break
                time.sleep(0.5)
            time.sleep(2)  # plotly's first paint
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    print(f"screenshot: wrote {os.path.relpath(args.out, ROOT)} ({args.page})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
