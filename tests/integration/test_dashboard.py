"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver) driven by
Selenium against the whole stack: sign in, open a batch, open a job, see its overlay render,
record a review decision and find it persisted."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("chromedriver") is None, reason="chromium-driver is not installed"),
]

SHOTS = (
    Path(os.environ.get("UNMASK_SCREENSHOTS_DIR", "")) if os.environ.get("UNMASK_SCREENSHOTS_DIR") else None
)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, name: str, tmp_path: Path) -> None:
    folder = SHOTS or tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))


def test_a_moderator_signs_in_opens_a_batch_and_a_job_and_records_a_decision(
    stack, browser, face_bytes, tmp_path
):
    from selenium.webdriver.common.by import By

    files = [("image", (f"face-{i}.jpg", face_bytes)) for i in range(2)]
    batch = stack.http.post(f"{stack.url}/v1/batches", files=files, timeout=30).json()
    deadline = time.monotonic() + 120
    while stack.http.get(f"{stack.url}/v1/batches/{batch['id']}").json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    key = stack.http.headers["Authorization"].removeprefix("Bearer ")

    browser.get(f"{stack.url}/dashboard")
    assert browser.current_url.endswith("/dashboard/login")  # signed out: sent to sign in
    shot(browser, "login", tmp_path)
    browser.find_element(By.ID, "key").send_keys("um_wrong-key")
    browser.find_element(By.ID, "sign-in").click()
    assert "unknown or revoked" in browser.find_element(By.ID, "error").text
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.ID, "sign-in").click()
    assert browser.find_element(By.ID, "health").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#jobs .job-link")
    shot(browser, "jobs", tmp_path)

    browser.find_element(By.CSS_SELECTOR, f"#batches a[href$='{batch['id']}']").click()
    assert browser.find_element(By.ID, "batch-status").text == "completed"
    assert "width: 100" in browser.find_element(By.CSS_SELECTOR, "#progress > div").get_attribute("style")
    shot(browser, "batch", tmp_path)

    browser.find_element(By.CSS_SELECTOR, "#jobs .job-link").click()
    overlay = browser.find_element(By.ID, "overlay")
    deadline = time.monotonic() + 10
    while not browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", overlay):
        assert time.monotonic() < deadline, "the overlay image did not render"
        time.sleep(0.2)
    assert browser.execute_script("return arguments[0].naturalWidth", overlay) > 0
    assert browser.execute_script("return document.getElementById('original').naturalWidth") > 0
    job_id = browser.current_url.rstrip("/").rsplit("/", 1)[-1]
    shot(browser, "job", tmp_path)

    browser.find_element(By.CSS_SELECTOR, "input[name=decision][value=confirmed_fake]").click()
    browser.find_element(By.NAME, "note").send_keys("blending seam at the jaw")
    browser.find_element(By.ID, "save-review").click()
    assert "confirmed_fake" in browser.find_element(By.ID, "decision").text
    browser.refresh()
    assert "blending seam at the jaw" in browser.find_element(By.ID, "decision").text  # persisted
    review = stack.http.get(f"{stack.url}/v1/jobs/{job_id}").json()["review"]
    assert review["decision"] == "confirmed_fake" and review["note"] == "blending seam at the jaw"

    browser.get(f"{stack.url}/dashboard/review")
    assert job_id not in browser.page_source  # decided: out of the queue
    shot(browser, "review-queue", tmp_path)


def test_a_form_without_the_sessions_csrf_token_is_refused(stack):
    import requests

    key = stack.http.headers["Authorization"].removeprefix("Bearer ")
    browser_like = requests.Session()
    signed = browser_like.post(f"{stack.url}/dashboard/login", data={"key": key}, allow_redirects=False)
    assert signed.status_code == 302 and "unmask_session" in browser_like.cookies
    job = stack.http.get(f"{stack.url}/v1/jobs", params={"limit": 1}).json()["jobs"][0]
    forged = browser_like.post(
        f"{stack.url}/dashboard/jobs/{job['id']}/review", data={"decision": "real"}, allow_redirects=False
    )
    assert forged.status_code == 400


def test_reviewed_images_export_as_a_folder_unmask_train_reads(stack, face_bytes, tmp_path):
    import json
    import subprocess
    import sys

    job = stack.wait(stack.submit(face_bytes)["id"])
    key = stack.http.headers["Authorization"].removeprefix("Bearer ")
    from unmask.core.wiring import build_services

    services = build_services(stack.settings, queue=None)  # type: ignore[arg-type]  # records only
    services.reviews.record(
        owner="e2e", job_id=job["id"], decision="confirmed_fake", note="swap", reviewer=key[:11]
    )
    out = tmp_path / "labelled"
    env = {
        **os.environ,
        **{
            f"UNMASK_{k.upper()}": str(v)
            for k, v in {
                "database_url": stack.settings.database_url,
                "store": "s3",
                "s3_endpoint_url": stack.settings.s3_endpoint_url,
                "s3_access_key": stack.settings.s3_access_key.get_secret_value(),  # type: ignore[union-attr]
                "s3_secret_key": stack.settings.s3_secret_key.get_secret_value(),  # type: ignore[union-attr]
                "s3_bucket": stack.settings.s3_bucket,
                "data_dir": str(tmp_path / "data"),
            }.items()
        },
    }
    result = subprocess.run(
        [sys.executable, "-m", "unmask", "reviews", "export", "--tenant", "e2e", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    exported = out / "fake" / f"reviewed__{job['id']}.jpg"
    assert exported.read_bytes() == face_bytes
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {"file": f"fake/reviewed__{job['id']}.jpg", "label": "fake"}.items() <= next(
        r for r in rows if r["job_id"] == job["id"]
    ).items()
    assert stack.http.get(f"{stack.url}/v1/jobs/{job['id']}").json()["review"]["decision"] == "confirmed_fake"
