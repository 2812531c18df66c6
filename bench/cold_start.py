"""Cold start (issue: Hardening): `streamlit run app.py` process start → first page rendered in Chromium.

"Rendered" = the overview's head-count metric is visible in headless Debian Chromium (selenium, the
system chromedriver; nothing is downloaded). Each repetition starts a fresh server process.
"""
from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _driver(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def one_cold_start(driver) -> tuple[float, float]:
    """(process start → server healthy, process start → first page rendered), seconds."""
    from selenium.webdriver.common.by import By

    port = _free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.fileWatcherType", "none"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                time.sleep(0.05)
        healthy = time.perf_counter() - t0
        driver.get(url)
        while not any("Head dims" in m.text for m in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]')):
            time.sleep(0.05)
        return healthy, time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main(reps: int = 3) -> list[tuple[str, float, float | None]]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        print("cold start: skipped (no /usr/bin/chromium or chromedriver)")
        return []
    profile = tempfile.mkdtemp(prefix="dtviz-bench-")
    driver = _driver(profile)
    try:
        runs = [one_cold_start(driver) for _ in range(reps)]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return [("cold start: process start → server healthy", statistics.median(r[0] for r in runs), None),
            ("cold start: process start → first page rendered (Chromium)", statistics.median(r[1] for r in runs), None)]
