"""The dashboard in a real browser: `streamlit run app.py` + Debian's headless Chromium via selenium.

A cold deep link opens its page without a "Page not found" dialog; two pages change τ and the visible
head-count number changes; the live pruning page regenerates its pruned grid when τ changes; no error box
or exception appears anywhere. Screenshots go to tests/output/. Never downloads a browser or a driver: the
Chromium binary and chromedriver paths are passed explicitly (selenium-manager is not consulted).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "tests", "output")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"  # dtviz.serving.local's, checked before import

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed (CI installs it with `apt-get install chromium chromium-driver`)",
                allow_module_level=True)
if not os.path.exists(CHROMEDRIVER):
    pytest.skip(f"{CHROMEDRIVER} is not installed (Debian package chromium-driver)", allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
import dtviz  # noqa: E402
from dtviz.analysis.stats import ConditionStats  # noqa: E402
from dtviz.serving.local import app_idle as idle, chromium_driver, free_port, wait_healthy  # noqa: E402

HEAD_LABEL = "Head dims"


@pytest.fixture(scope="module")
def server():
    os.makedirs(OUTPUT, exist_ok=True)
    port = free_port()
    log = open(os.path.join(OUTPUT, "streamlit-server.log"), "w")
    # no watcher setting here: the repo's config (passed on by dtviz serve) must turn it off itself
    env = {k: v for k, v in os.environ.items() if k != "STREAMLIT_SERVER_FILE_WATCHER_TYPE"}
    env["PYTHONUNBUFFERED"] = "1"
    # The README's launch command: `dtviz serve` (127.0.0.1, the folder it starts in as the served root).
    proc = subprocess.Popen([sys.executable, "-m", "dtviz", "serve", "--port", str(port)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def downloads():
    folder = tempfile.mkdtemp(prefix="dtviz-downloads-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(downloads):
    profile = tempfile.mkdtemp(prefix="dtviz-chromium-")
    driver = chromium_driver(profile, size="1600,1900",
                             prefs={"download.default_directory": downloads, "download.prompt_for_download": False})
    driver.set_page_load_timeout(90)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ------------------------------------------------------------------------------------------ helpers

def wait(driver, predicate, timeout=90, what="condition"):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.3,
                             ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: predicate(d))
    except TimeoutException:
        shot(driver, f"timeout-{what.replace(' ', '-')}")
        raise AssertionError(f"timed out waiting for {what}") from None


def head_count(driver) -> str | None:
    for metric in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        label = metric.find_elements(By.CSS_SELECTOR, '[data-testid="stMetricLabel"]')
        if label and label[0].text.startswith(HEAD_LABEL):
            return metric.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text.strip()
    return None


def errors_on_page(driver) -> list[str]:
    found = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [e.text for e in found if e.is_displayed()]


def dialogs(driver) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[role="dialog"]') if e.is_displayed()]


def set_tau(driver, value: str, where: str = '[data-testid="stSidebar"]') -> None:
    """Type τ into the number box labelled τ (the sidebar's, or the page's with where='[data-testid="stMain"]')."""
    box = wait(driver, lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, f'{where} input')
                                       if e.get_attribute("aria-label") == "τ"), None), what="the τ box")
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    box.send_keys(value)
    box.send_keys(Keys.ENTER)


def settle(driver, seconds: float = 1.0) -> None:
    time.sleep(seconds)
    wait(driver, idle, what="the app to finish running")


def shot(driver, name: str) -> str:
    os.makedirs(OUTPUT, exist_ok=True)
    path = os.path.join(OUTPUT, f"{name}.png")
    driver.save_screenshot(path)
    return path


def open_and_check(driver, url: str, name: str) -> str:
    driver.get(url)
    count = wait(driver, head_count, what=f"the head count on {name}")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"), what=f"a figure on {name}")
    settle(driver, 2.0)
    assert errors_on_page(driver) == [], f"error box on {name}"
    return head_count(driver) or count


def change_tau_and_check(driver, value: str, before: str, name: str) -> str:
    set_tau(driver, value)
    after = wait(driver, lambda d: (c := head_count(d)) and c != before and c, what=f"the head count to change on {name}")
    settle(driver, 2.0)
    assert errors_on_page(driver) == [], f"error box on {name} after changing τ"
    assert f"tau={value}" in driver.current_url, driver.current_url
    return after


# -------------------------------------------------------------------------------------------- test

def download(driver, folder: str, label: str, suffix: str, timeout: float = 90) -> str:
    """Click the download button labelled ``label`` and wait for the finished file."""
    button = next(b for b in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDownloadButton"] button')
                  if label in b.text)
    before = set(os.listdir(folder))
    button.click()
    done = wait(driver, lambda d: next((f for f in set(os.listdir(folder)) - before if f.endswith(suffix)), None),
                timeout=timeout, what=f"the download of {label}")
    return os.path.join(folder, done)


def test_cold_deep_link_opens_its_page(server, browser):
    """The first request of the session is a link to a page with settings: no "Page not found" dialog (a
    folder named pages/ next to app.py used to switch on Streamlit's legacy page discovery)."""
    count = open_and_check(browser, server + "/cosine?tau=0.1", "cosine (cold deep link)")
    assert dialogs(browser) == [], dialogs(browser)
    assert "/cosine" in browser.current_url and browser.find_element(By.TAG_NAME, "h1").text.startswith("Cosine")
    head = ConditionStats().fit(dtviz.load("builtin").embeddings()).at_tau(0.1)["head_count"]
    assert count.startswith(f"{head} / {dtviz.load('builtin').dim}"), (count, head)  # τ = 0.1 from the link, as `dtviz stats --tau 0.1`
    shot(browser, "deep-link")


def test_a_change_inside_pages_does_not_lose_the_pages(server, browser):
    """A file written inside pages/ (the report export imports the page modules, and Python writes their .pyc there)
    once made Streamlit re-scan pages/ the legacy way: /overview then showed "Page not found"."""
    open_and_check(browser, server + "/overview", "overview before")
    cache = os.path.join(ROOT, "pages", "__pycache__")
    os.makedirs(cache, exist_ok=True)
    marker = os.path.join(cache, "dtviz-test-touch.cpython-311.pyc")
    try:
        with open(marker, "wb") as fh:
            fh.write(b"touch")
        os.utime(os.path.join(ROOT, "pages", "overview_view.py"))
        time.sleep(3)
        open_and_check(browser, server + "/overview", "overview after a change in pages/")
        assert dialogs(browser) == [], dialogs(browser)
        assert "Page not found" not in browser.find_element(By.TAG_NAME, "body").text
    finally:
        os.remove(marker)


def test_two_pages_tau_changes_head_count(server, browser, downloads):
    before = open_and_check(browser, server + "/", "overview")
    shot(browser, "overview")
    after = change_tau_and_check(browser, "0.2", before, "overview")
    assert after != before
    shot(browser, "overview-tau-0.2")

    # second page, opened from the sidebar navigation (the session keeps τ = 0.2) …
    link = next(e for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')
                if "Magnitudes" in e.text)
    link.click()
    wait(browser, lambda d: "/magnitudes" in d.current_url, what="the magnitudes page")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"), what="a figure on magnitudes")
    settle(browser, 2.0)
    kept = head_count(browser)
    assert kept == after, (kept, after)
    assert "tau=0.2" in browser.current_url, browser.current_url  # the link keeps the settings across pages
    assert errors_on_page(browser) == []
    changed = change_tau_and_check(browser, "0.003", kept, "magnitudes")
    assert changed != kept
    shot(browser, "magnitudes")

    # the page's report: one self-contained HTML file with its figures, the model card and the settings
    report = download(browser, downloads, "Export report (this page)", ".html")
    with open(report, encoding="utf-8") as fh:
        html = fh.read()
    assert html.count("class='dtviz-figure-data'") == 4, "expected the 4 figures of the magnitudes page"
    assert "nPR (of mean vector c̄)" in html and "0.003" in html and "/magnitudes?" in html
    assert errors_on_page(browser) == []

    # … and a shared link reproduces a view: the cosine page with τ in the URL
    count = open_and_check(browser, server + "/cosine?tau=0.003", "cosine")
    assert count == changed
    shot(browser, "cosine")
    with open(os.path.join(OUTPUT, "streamlit-server.log"), encoding="utf-8") as fh:
        assert "Traceback" not in fh.read(), "the server logged an exception (tests/output/streamlit-server.log)"


def grid_sources(driver, name: str) -> list[str]:
    return [img.get_attribute("src") for img in driver.find_elements(By.CSS_SELECTOR, f'[data-grid="{name}"] img')]


def test_live_pruning_tau_changes_the_pruned_grid(server, browser):
    browser.get(server + "/pruning?pr_n=16")
    before = wait(browser, lambda d: (s := grid_sources(d, "pruned")) and len(s) == 16 and s, what="the pruned grid")
    settle(browser, 2.0)
    before = grid_sources(browser, "pruned")
    baseline = grid_sources(browser, "baseline")
    assert errors_on_page(browser) == [] and dialogs(browser) == []
    assert before != baseline  # τ = 0.01 removes 2 dims: the samples drift a little

    # type τ into the page's box (the fragment reruns: only the pruned side recomputes)
    set_tau(browser, "0.2", where='[data-testid="stMain"]')
    typed = wait(browser, lambda d: (s := grid_sources(d, "pruned")) and len(s) == 16 and s != before and s,
                 what="the pruned grid to change after typing τ")
    settle(browser, 1.0)
    assert errors_on_page(browser) == []
    assert grid_sources(browser, "baseline") == baseline  # same seeds, cached
    assert "pr_tau=0.2" in browser.current_url, browser.current_url

    # drag the log slider's thumb a few marks to the left and release it
    value = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"] [data-testid="stSliderThumbValue"]')
    snapped = float(value.text)  # the slider shows the mark nearest 0.2 (a magnitude of the model's own dims)
    assert 0.1 < snapped < 0.4, value.text
    thumb = value.find_element(By.XPATH, "..")
    ActionChains(browser).click_and_hold(thumb).move_by_offset(-45, 0).release().perform()
    wait(browser, lambda d: (s := grid_sources(d, "pruned")) and len(s) == 16 and s != typed and s,
         what="the pruned grid to change after moving the slider")
    settle(browser, 1.0)
    assert errors_on_page(browser) == []
    moved = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"] [data-testid="stSliderThumbValue"]').text
    assert float(moved) < snapped and f"pr_tau={moved}" in browser.current_url, (moved, browser.current_url)
    shot(browser, "pruning")
    with open(os.path.join(OUTPUT, "streamlit-server.log"), encoding="utf-8") as fh:
        assert "Traceback" not in fh.read(), "the server logged an exception (tests/output/streamlit-server.log)"


def rect(driver, element) -> dict:
    return driver.execute_script("const r = arguments[0].getBoundingClientRect();"
                                 "return {left: r.left, top: r.top, right: r.right, bottom: r.bottom};", element)


def test_pruning_controls_and_grids_fit_one_screen(server, browser):
    """Issue 14: at 1600×1000 the τ slider and the baseline, pruned and contrast grids are on screen together,
    with no scrolling (the dimension inspector may start below)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 1600, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
    try:
        browser.get(server + "/pruning")
        for name in ("baseline", "pruned", "contrast"):
            wait(browser, lambda d: len(grid_sources(d, name)) == 16, timeout=400, what=f"the {name} grid")
        settle(browser, 2.0)
        assert errors_on_page(browser) == []
        assert browser.execute_script("return [window.innerWidth, window.innerHeight]") == [1600, 1000]
        main = '[data-testid="stMain"]'
        browser.execute_script(f"document.querySelector('{main}').scrollTo(0, 0); window.scrollTo(0, 0);")
        slider = browser.find_element(By.CSS_SELECTOR, f'{main} [data-testid="stSlider"]')
        box = next(e for e in browser.find_elements(By.CSS_SELECTOR, f"{main} input") if e.get_attribute("aria-label") == "τ")
        boxes = {"τ slider": rect(browser, slider), "τ box": rect(browser, box)}
        for name in ("baseline", "pruned", "contrast"):
            boxes[f"{name} grid"] = rect(browser, browser.find_element(By.CSS_SELECTOR, f'[data-grid="{name}"]'))
        shot(browser, "pruning-1600x1000")
        for what, r in boxes.items():
            assert r["top"] >= 0 and r["left"] >= 0 and r["bottom"] <= 1000 and r["right"] <= 1600, (what, r)
        assert boxes["τ slider"]["right"] - boxes["τ slider"]["left"] >= 600, boxes["τ slider"]  # a wide slider
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_a_page_s_own_figure_starts_in_the_first_screen(server, browser):
    """Issue 21: the page header (title, settings line, four headline numbers) is compact, so on the magnitudes page
    the page's own first figure starts in the first 1600×1000 screen, below the header's numbers."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 1600, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
    try:
        open_and_check(browser, server + "/magnitudes", "magnitudes")
        main = '[data-testid="stMain"]'
        browser.execute_script(f"document.querySelector('{main}').scrollTo(0, 0); window.scrollTo(0, 0);")
        figure = browser.find_elements(By.CSS_SELECTOR, f"{main} .js-plotly-plot")[0]
        title = browser.find_element(By.CSS_SELECTOR, f"{main} h1")
        top = rect(browser, figure)["top"]
        assert rect(browser, title)["top"] >= 0, "the title is hidden under the toolbar"
        assert top < 700, f"the first figure starts at {top:.0f} px"
        shot(browser, "magnitudes-first-screen")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
