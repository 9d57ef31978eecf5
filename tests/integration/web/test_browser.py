"""The status page in a real headless Chromium: log in, read the overview and a study page.

Screenshots are kept in the test's folder and examined here: not blank, the research-use
banner's colour, the outline colour on the image, the heatmap's colour scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.web.conftest import PASSWORD, USER
from tests.support.browser import colour_pixels, distinct_colours, headless_chromium, png_array
from web.render import OUTLINE_RGB

pytestmark = pytest.mark.integration

BANNER_RGB = (0x7A, 0x1F, 0x1F)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with headless_chromium(width=1400, height=1600) as driver:
        yield driver


def _login(driver) -> None:  # type: ignore[no-untyped-def]
    driver.find_element(By.ID, "username").send_keys(USER)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 30).until(lambda d: "/login" not in d.current_url)


def _wait_images(driver) -> None:  # type: ignore[no-untyped-def]
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"))


def _save(path: Path, png: bytes) -> np.ndarray:
    path.write_bytes(png)
    return png_array(png)


def test_browser_study_link_without_login_goes_through_login_to_study(  # type: ignore[no-untyped-def]
    browser, served_node, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shots = tmp_path_factory.mktemp("screenshots")
    study_path = f"/studies/{served_node.delivered_study_id}"
    browser.delete_all_cookies()
    browser.get(served_node.url + study_path)
    assert "/login" in browser.current_url
    login = _save(shots / "login.png", browser.get_screenshot_as_png())
    assert colour_pixels(login, BANNER_RGB, tolerance=8) > 1000
    _login(browser)
    assert browser.current_url == served_node.url + study_path
    _wait_images(browser)
    page = _save(shots / "study.png", browser.get_screenshot_as_png())
    assert distinct_colours(page) > 200  # an image and a heatmap, not a blank page

    job = served_node.delivered_job_id
    outline = png_array(browser.find_element(By.ID, f"image-{job}").screenshot_as_png)
    assert colour_pixels(outline, OUTLINE_RGB, tolerance=30) > 20
    heatmap = png_array(browser.find_element(By.ID, f"heatmap-{job}").screenshot_as_png)
    assert colour_pixels(heatmap, (200, 0, 0), tolerance=60) > 50  # the hot end of the scale
    assert colour_pixels(heatmap, (0, 0, 200), tolerance=60) > 50  # the cold end
    assert colour_pixels(outline, (200, 0, 0), tolerance=60) == 0  # the outline image has no heat

    report = browser.find_element(By.ID, f"report-{job}").text
    assert "Research use only: not a medical device" in report
    assert "Model tiny-ynet@0.1.0" in report
    assert f"Probability of cancer {100 * served_node.delivered_probability:.1f} %" in report
    assert "Call Metastasis: " in report and "(threshold 50.0 %)" in report and " mm" in report
    header = browser.find_element(By.ID, "study-header").text
    assert "SYNTHETIC^PHANTOM" in header


def test_browser_overview_after_login_shows_counts_and_errors(  # type: ignore[no-untyped-def]
    browser, served_node, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shots = tmp_path_factory.mktemp("screenshots")
    browser.delete_all_cookies()
    browser.get(served_node.url + "/login")
    _login(browser)
    assert browser.current_url == served_node.url + "/"
    overview = _save(shots / "overview.png", browser.get_screenshot_as_png())
    assert distinct_colours(overview) > 10
    assert colour_pixels(overview, BANNER_RGB, tolerance=8) > 1000
    assert "0 queued" in browser.find_element(By.ID, "queue-depth").text
    assert "1 quarantined" in browser.find_element(By.ID, "error-summary").text
    jobs = browser.find_element(By.ID, "job-counts").text
    assert "DELIVERED 1" in jobs and "ENCODED 1" in jobs
    browser.find_element(By.LINK_TEXT, "Errors").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "problem-deliveries"))
    _save(shots / "errors.png", browser.get_screenshot_as_png())
    assert "RETRY" in browser.find_element(By.ID, "problem-deliveries").text
    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
    WebDriverWait(browser, 30).until(lambda d: "/login" in d.current_url)
    browser.get(served_node.url + "/")
    assert "/login" in browser.current_url
