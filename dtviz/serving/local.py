"""A dashboard on this machine, for the scripts, benchmarks and browser tests that drive it: a free local port,
waiting until the server answers, and Debian's headless Chromium through selenium (the binary and driver paths are
given explicitly, so selenium-manager never downloads a browser)."""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
QUIET_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
               "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 120, poll: float = 0.5) -> None:
    """Return once ``url``'s Streamlit health check says ok; raise if ``proc`` exits first or ``timeout`` passes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the dashboard exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(poll)
    raise TimeoutError(f"the dashboard did not become healthy at {url} within {timeout:.0f} s")


def chromium_driver(profile: str, size: str = "1600,1000", prefs: dict | None = None):
    """Headless Chromium at ``size`` (CSS pixels, scale 1) with its profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    if prefs:
        opts.add_experimental_option("prefs", prefs)
    for flag in QUIET_FLAGS + (f"--window-size={size}", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: selenium-manager must never download
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def app_idle(driver) -> bool:
    """The app is not running (no 'Running…' status widget) and no spinner is shown."""
    from selenium.webdriver.common.by import By

    busy = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"], [data-testid="stSpinner"]')
    return not any(e.is_displayed() for e in busy)


def wait_idle(driver, timeout: float = 240.0, steady: float = 2.0) -> bool:
    """Wait until ``app_idle`` has held for ``steady`` seconds on end (a rerun, e.g. after the URL's query is synced,
    leaves a moment with no status widget before the real work starts); False after ``timeout`` seconds."""
    import time

    deadline, since = time.time() + timeout, None
    while time.time() < deadline:
        if app_idle(driver):
            since = since or time.time()
            if time.time() - since >= steady:
                return True
        else:
            since = None
        time.sleep(0.25)
    return False
