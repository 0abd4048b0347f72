"""Headless Chromium for report tests: Debian's package, installed here when missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _install_chromium() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    if subprocess.run(install, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600, check=True)
        subprocess.run(install, capture_output=True, timeout=600, check=True)
    path = shutil.which("chromium")
    assert path, "chromium could not be installed with apt-get"
    return path


@pytest.fixture(scope="session")
def chromium() -> str:
    return _install_chromium()


@pytest.fixture
def open_report(chromium, tmp_path):
    """Open an HTML file in a fresh headless Chromium profile; returns what the page did:
    its requests, console errors, each figure's rendering state and a screenshot."""
    from playwright.sync_api import sync_playwright

    def run(path: Path) -> dict:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1200, "height": 900})
            try:
                page = context.new_page()
                requests, errors = [], []
                page.on("request", lambda request: requests.append(request.url))
                page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(path.resolve().as_uri(), wait_until="load")
                page.wait_for_timeout(500)
                figures = page.evaluate("""() => [...document.querySelectorAll('section.figure')].map(s => {
                    const plot = s.querySelector('.js-plotly-plot');
                    return {key: s.dataset.key, missing: s.classList.contains('missing'),
                            traces: plot && plot.data ? plot.data.length : 0,
                            drawn: !!(plot && plot.querySelector('.main-svg'))};
                })""")
                screenshot = page.screenshot(full_page=False)
            finally:
                context.close()
        return {"requests": requests, "errors": errors, "figures": figures, "screenshot": screenshot}

    return run
