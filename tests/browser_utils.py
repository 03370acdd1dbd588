"""
Headless Chromium for the browser tests: Debian's ``chromium`` driven through its ``chromedriver`` by Selenium.

The paths come from ``$CHROMIUM`` and ``$CHROMEDRIVER`` (Debian's by default; ``make chromium`` installs
them). Selenium Manager is never asked for a driver or a browser: the driver's path is given, and
``SE_OFFLINE`` forbids it any download. A browser that cannot start fails the tests that need it with one
line saying how to install it; it never skips them.

Screenshots go to a directory of the test session; with ``$KAFKA_CONSUMER_APP_SCREENSHOTS`` naming a
directory (``make screenshots``: docs/images), a session in which every test passed copies them there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
#: Where a passing session copies its screenshots (unset: nowhere).
SCREENSHOTS_ENV = "KAFKA_CONSUMER_APP_SCREENSHOTS"
#: The window, and so every screenshot: wide enough for the partitions and members tables.
WINDOW = (1280, 900)
#: Bound of every wait for a page or an element; a page reads its groups from the broker.
WAIT = 20.0


def start_chromium() -> webdriver.Chrome:
    """Start headless Chromium through Debian's chromedriver, or fail with one line on how to install them."""
    for name, path in (("Chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{name} is not installed at {path}: run `make chromium` (or set ${name.upper()})")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    except WebDriverException as error:
        first_line = (error.msg or str(error)).strip().splitlines()[0]
        raise RuntimeError(f"headless Chromium did not start ({first_line}): check `make chromium`") from None
    driver.set_page_load_timeout(WAIT)
    return driver


def replaced(element: WebElement) -> bool:
    """
    Whether ``element`` has left the document, its page replaced by the next one.

    Chromium answers a question about an element of a page being torn down either with a stale
    element reference or, mid-navigation, with an inspector error ("Node with given id does not belong
    to the document"): both mean the old page is gone.
    """
    try:
        element.is_enabled()
    except WebDriverException:  # StaleElementReferenceException is one of them
        return True
    return False


class Browser:
    """One test's view of the shared Chromium: pages of the live server, bounded waits, named screenshots."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, screenshots: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.screenshots = screenshots

    def open(self, path: str) -> None:
        """Load ``path`` of the live server."""
        self.driver.get(self.base_url + path)

    def wait(self, css: str, text: str = "") -> WebElement:
        """The first element matching ``css`` (whose text contains ``text``), waited for up to WAIT seconds."""

        def found(driver: Any) -> WebElement | bool:
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                if text in element.text:
                    return element  # type: ignore[no-any-return]
            return False

        try:
            return WebDriverWait(self.driver, WAIT).until(found)  # type: ignore[no-any-return]
        except TimeoutException:
            body = self.driver.find_element(By.TAG_NAME, "body").text[:600]
            raise AssertionError(
                f"after {WAIT:g}s no {css!r} containing {text!r} on {self.driver.current_url}; the page says:\n{body}"
            ) from None

    def missing(self, css: str) -> bool:
        """Whether no element of the page (as loaded now) matches ``css``."""
        return not self.driver.find_elements(By.CSS_SELECTOR, css)

    def click(self, css: str, text: str = "") -> None:
        """Click an element once it is there, and wait until the page it leads to has replaced this one."""
        element = self.wait(css, text)
        element.click()
        WebDriverWait(self.driver, WAIT).until(lambda _: replaced(element))

    def log_in(self, username: str, password: str) -> None:
        """Fill in the admin's login form, already open, and send it."""
        self.wait("#id_username").send_keys(username)
        self.wait("#id_password").send_keys(password)
        self.click("#login-form input[type=submit]")

    def text(self) -> str:
        """The visible text of the page."""
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def screenshot(self, name: str) -> Path:
        """Save the window as ``<name>.png`` in the session's screenshot directory."""
        path = self.screenshots / f"{name}.png"
        if not self.driver.save_screenshot(str(path)):
            raise AssertionError(f"Chromium could not save the screenshot {path.name}")
        return path


def publish_screenshots(directory: Path) -> list[Path]:
    """Copy the session's screenshots to ``$KAFKA_CONSUMER_APP_SCREENSHOTS``, when set; return the copies."""
    target = os.environ.get(SCREENSHOTS_ENV)
    if not target:
        return []
    Path(target).mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(path, Path(target) / path.name)) for path in sorted(directory.glob("*.png"))]
