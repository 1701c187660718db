"""The web page in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium) opens the page of a key-protected server, is told the key, uploads a real
test image, waits for its overlay, and shows the score the API recorded.  The screenshot is
kept (pytest's tmp path and ``runs/test-artifacts/serve-page.png``).  Skipped, with the
reason, where Chromium or its driver is not installed (``.ci/run`` installs both).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from helpers.serve import server_thread, texture_images, tiny_run
from reconad.serve.app import create_app
from reconad.serve.config import ServeConfig, ServedRun

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread"), pytest.mark.timeout(300)]
CHROMIUM, DRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)
KEY = "browser-test-key-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts"


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="browser test skipped: selenium is not installed")
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("browser test skipped: install Debian's chromium and chromium-driver (.ci/run does)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_uploads_an_image_and_shows_the_apis_score(browser, tiny_mvtec, tmp_path, tmp_path_factory):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    run = tiny_run(tiny_mvtec, tmp_path_factory.getbasetemp())
    (tmp_path / "key").write_text(KEY)
    config = ServeConfig(
        runs=[ServedRun("brick", str(run))], db=f"sqlite:///{tmp_path / 'r.db'}", api_key_file=str(tmp_path / "key")
    )
    image = next(p for p in texture_images(tiny_mvtec) if p.parent.name != "good")  # a defective part
    wait = WebDriverWait(browser, 60)
    with server_thread(create_app(config)) as url:
        browser.get(url + "/")
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "API key"))  # the page asks for the key
        browser.find_element(By.ID, "api-key").send_keys(KEY)
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait.until(lambda d: d.find_element(By.ID, "model-info").text.startswith("hfr"))
        browser.find_element(By.ID, "file-input").send_keys(str(image))
        card = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#scored .card")))
        overlay = card.find_element(By.CSS_SELECTOR, "img.overlay")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", overlay))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results tbody tr"))
        shown_score = card.find_element(By.CSS_SELECTOR, ".score").text
        result_id, exact = card.get_attribute("data-id"), card.get_attribute("data-score")
        resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        browser.save_screenshot(str(tmp_path / "serve-page.png"))
        api = httpx.get(f"{url}/v1/results/{result_id}", headers={"Authorization": f"Bearer {KEY}"}).json()
        rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "serve-page.png", ARTIFACTS / "serve-page.png")
    assert float(exact) == api["score"]  # the page shows the score the API recorded, exactly
    assert shown_score == f"{api['score']:.6g}" or float(shown_score) == pytest.approx(api["score"], rel=1e-5)
    assert card.find_element(By.CSS_SELECTOR, ".name").text == image.name
    assert api["image_name"] == image.name and rows[0].get_attribute("data-id") == result_id
    assert all(r.startswith(url) for r in resources), resources  # nothing from outside the server
    assert overlay.get_attribute("naturalWidth") == str(api["width"])


def test_page_shows_the_audit_sample_and_records_a_review(browser, tmp_path):
    """An audited upload appears under "Audit sample" with its image; clicking "normal" records
    the review, and the page shows the measured false-alarm rate it now rests on."""
    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from helpers.minimal_models import minimal_detector
    from helpers.serve import png_bytes

    minimal_detector("ae").save(tmp_path / "run" / "model")
    image = tmp_path / "part.png"
    image.write_bytes(png_bytes(np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)))
    config = ServeConfig(
        runs=[ServedRun("toy", str(tmp_path / "run"))],
        db=f"sqlite:///{tmp_path / 'r.db'}",
        engine="torch",
        audit_share=0.999,
        audit_seed=0,
        defects_dir=str(tmp_path / "defects"),
    )
    wait = WebDriverWait(browser, 60)
    with server_thread(create_app(config)) as url:
        browser.get(url + "/")
        wait.until(lambda d: d.find_element(By.ID, "model-info").text.startswith("ae"))
        browser.find_element(By.ID, "file-input").send_keys(str(image))
        card = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#audit .card")))
        shown = card.find_element(By.CSS_SELECTOR, "img")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", shown))
        result_id, width = card.get_attribute("data-id"), shown.get_attribute("naturalWidth")
        card.find_element(By.XPATH, ".//button[text()='normal']").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "false-alarms"), "on 1 reviewed audit normal"))
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#audit .card"))
        browser.save_screenshot(str(tmp_path / "serve-audit.png"))
        queue = httpx.get(f"{url}/v1/models/toy/audit").json()
    assert queue["counts"] == {"audited": 1, "reviewed_normal": 1, "reviewed_defect": 0, "pending": 0}
    assert width == "20" and len(result_id) == 32
