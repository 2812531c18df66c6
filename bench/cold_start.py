"""Cold start (issue: Hardening): `streamlit run app.py` process start → first page rendered in Chromium.

"Rendered" = the overview's head-count metric is visible in headless Debian Chromium (selenium, the
system chromedriver; nothing is downloaded). Each repetition starts a fresh server process.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dtviz.serving.local import CHROMEDRIVER, CHROMIUM, chromium_driver, free_port, wait_healthy  # noqa: E402


def one_cold_start(driver) -> tuple[float, float]:
    """(process start → server healthy, process start → first page rendered), seconds."""
    from selenium.webdriver.common.by import By

    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.fileWatcherType", "none"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, poll=0.05)
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
    driver = chromium_driver(profile, size="1400,1000")
    try:
        runs = [one_cold_start(driver) for _ in range(reps)]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return [("cold start: process start → server healthy", statistics.median(r[0] for r in runs), None),
            ("cold start: process start → first page rendered (Chromium)", statistics.median(r[1] for r in runs), None)]
