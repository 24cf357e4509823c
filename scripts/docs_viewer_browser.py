"""The API docs page (`GET /docs`) in a real headless browser: Debian's Chromium through its
chromium-driver, driven by Selenium. Run by scripts/docs-viewer-test.sh, which starts crm-server.

Usage: docs_viewer_browser.py BASE_URL   (e.g. http://127.0.0.1:3000)

For the page at BASE_URL/docs and again under a stage prefix (BASE_URL/prod/docs, whose URLs are
all relative), it checks that:
  - the page loads with no console error (a CSP violation is one) and no failed request;
  - it lists every operation of openapi.json (method and path), and nothing else;
  - "Try it out" on POST /customers with {"firstName":"Ada","lastName":"Lovelace"} answers 201, sent
    to this same server under the page's prefix, and the customer it created is there (GET).
Any failure, Chromium that cannot start included, exits non-zero: nothing is skipped.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

METHODS = ("get", "post", "put", "patch", "delete")
BODY = {"firstName": "Ada", "lastName": "Lovelace"}
WAIT = 20  # seconds, for any one thing the page does

passed = []


def fail(message):
    print(f"docs-viewer-test: FAIL {message}", file=sys.stderr)
    print(f"docs-viewer-test: {len(passed)} passed, 1 failed")
    sys.exit(1)


def ok(name):
    passed.append(name)
    print(f"docs-viewer-test: ok {name}")


def fetch_json(url):
    """The status and JSON body of GET url, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def browser():
    options = Options()
    options.binary_location = os.environ.get("CRM_CHROMIUM", "/usr/bin/chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI, where the setuid sandbox is not available
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,2000",
        "--no-first-run",
        "--disable-extensions",
        # No connection of the browser's own: this machine's network is closed but for loopback.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("CRM_CHROMEDRIVER", "/usr/bin/chromedriver"))
    try:
        return webdriver.Chrome(service=service, options=options)
    except WebDriverException as error:
        fail(f"Chromium did not start: {error.msg or error}")


def console_errors(driver):
    """The console's entries at level SEVERE since the last call (reading them empties the log)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def check_page(driver, base, prefix, operations):
    where = f"{prefix or '/'}"
    driver.get(f"{base}{prefix}/docs")
    try:
        WebDriverWait(driver, WAIT).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(operations)
        )
    except TimeoutException:
        fail(
            f"[{where}] the page did not list {len(operations)} operations in {WAIT} s; "
            f"console: {console_errors(driver)}"
        )
    listed = {
        (method.lower(), path)
        for method, path in driver.execute_script(
            """return [...document.querySelectorAll(".opblock")].map((block) => [
                block.querySelector(".opblock-summary-method").textContent,
                block.querySelector(".opblock-summary-path").dataset.path,
            ]);"""
        )
    }
    if listed != operations:
        fail(
            f"[{where}] operations listed differ from openapi.json: missing "
            f"{sorted(operations - listed)}, extra {sorted(listed - operations)}"
        )
    errors = console_errors(driver)
    if errors:
        fail(f"[{where}] console errors on load: {errors}")
    ok(f"[{where}] /docs loads with no console error and lists all {len(operations)} operations")

    block = driver.find_element(By.ID, "operations-customers-createCustomer")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: block.find_elements(By.CSS_SELECTOR, ".try-out__btn")
    )
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    editor = WebDriverWait(driver, WAIT).until(
        lambda d: block.find_element(By.CSS_SELECTOR, "textarea.body-param__text")
    )
    # The body as a paste puts it (typed key by key, the page re-renders at each key: 15 s): the
    # value through the element's own setter, then the input event React listens to.
    driver.execute_script(
        """const [editor, text] = arguments;
        const value = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value");
        value.set.call(editor, text);
        editor.dispatchEvent(new Event("input", { bubbles: true }));""",
        editor,
        json.dumps(BODY),
    )
    block.find_element(By.CSS_SELECTOR, "button.execute").click()
    status_cell = ".live-responses-table .response .response-col_status"
    try:
        WebDriverWait(driver, WAIT).until(
            lambda d: block.find_elements(By.CSS_SELECTOR, status_cell)
        )
    except TimeoutException:
        fail(f"[{where}] no response shown after Execute; console: {console_errors(driver)}")
    status = block.find_element(By.CSS_SELECTOR, status_cell).text.strip()
    url = block.find_element(By.CSS_SELECTOR, ".request-url pre").text.strip()
    curl = block.find_element(By.CSS_SELECTOR, ".curl-command").text
    body_text = block.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response-col_description pre"
    ).text
    if status != "201":
        fail(f"[{where}] the create from the page answered {status!r}: {body_text}")
    if url != f"{base}{prefix}/customers":
        fail(f"[{where}] the create went to {url}, not {base}{prefix}/customers")
    if "Content-Type: application/json" not in curl:
        fail(f"[{where}] the create was not sent as application/json: {curl}")
    created = json.loads(body_text)
    status, customer = fetch_json(f"{base}/customers/{created['id']}")
    if status != 200 or customer["firstName"] != "Ada" or customer["lastName"] != "Lovelace":
        fail(f"[{where}] GET /customers/{created['id']} answered {status}: {customer}")
    errors = console_errors(driver)
    if errors:
        fail(f"[{where}] console errors during the create: {errors}")
    ok(f"[{where}] a create sent from the page answers 201 at {url}, and the customer is there")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    base = sys.argv[1].rstrip("/")
    started = time.monotonic()
    _, document = fetch_json(f"{base}/openapi.json")
    operations = {
        (method, path)
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    }
    driver = browser()
    try:
        print(f"docs-viewer-test: {driver.capabilities.get('browserName')} "
              f"{driver.capabilities.get('browserVersion')}, headless")
        for prefix in ("", "/prod"):
            check_page(driver, base, prefix, operations)
    finally:
        driver.quit()
    print(f"docs-viewer-test: done in {time.monotonic() - started:.1f} s")
    print(f"docs-viewer-test: {len(passed)} passed, 0 failed")


if __name__ == "__main__":
    main()
