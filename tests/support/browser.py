"""Headless Debian Chromium driven through Debian's chromedriver (selenium), for page tests.

Nothing is downloaded: the browser and the driver are the system's (scripts/install.sh), and
Selenium Manager is never asked (the driver path is given).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--force-device-scale-factor=1", "--hide-scrollbars", "--enable-unsafe-swiftshader",
)


@contextmanager
def headless_chromium(width: int = 1400, height: int = 1000) -> Iterator[object]:
    """A selenium Chrome driver on a fresh profile folder; quits and removes it afterwards.

    The page's console messages are kept: ``driver.get_log("browser")`` returns them.
    """
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail("Debian chromium and chromium-driver are required (scripts/install.sh)")
    profile = Path(tempfile.mkdtemp(prefix="lnm-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def png_array(png: bytes) -> np.ndarray:
    """A screenshot (PNG bytes) as an (H, W, 3) uint8 array."""
    return np.asarray(Image.open(BytesIO(png)).convert("RGB"))


def colour_pixels(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    """How many pixels lie within ``tolerance`` of ``rgb`` on every channel."""
    difference = np.abs(image.astype(np.int16) - np.asarray(rgb, dtype=np.int16))
    return int((difference <= tolerance).all(axis=-1).sum())


def distinct_colours(image: np.ndarray) -> int:
    return len(np.unique(image.reshape(-1, image.shape[-1]), axis=0))
