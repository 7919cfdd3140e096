"""The web page in Debian's headless Chromium: upload chelsea, type parts, segment, see the overlay and legend."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking switches Chromium's own connections fail on a closed network and
# can stall page loads; --disable-quic keeps it on plain TCP to loopback.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Gradio's own use of pandas warns on pandas 3; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no_silent_downcasting:DeprecationWarning", "ignore:The copy keyword"
)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def require_browser() -> None:
    """Skip on a developer machine without Chromium; CI installs it, so there a missing one fails."""
    pytest.importorskip("playwright", reason="the browser test needs playwright (the dev extra)")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Chromium (apt-get install chromium) before the tests; see .ci/run.")
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install chromium).")


def test_page_segments_an_uploaded_photo(live_server, chelsea_path, chelsea):
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    typed_parts = ["head", "ear", "whisker", "tail"]
    vocabulary = "cat: " + ", ".join(typed_parts)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "serve_page.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(live_server.url + "/", wait_until="domcontentloaded")
            page.locator("input[type=file]").first.set_input_files(str(chelsea_path))
            # The uploaded photo shows in the input before we go on.
            expect(page.locator("img").first).to_be_visible()
            box = page.locator("#vocabulary textarea")
            box.fill(vocabulary)
            # Background threshold 0 makes every pixel take its best part, so the random tiny model always
            # names some of the typed parts: the test checks the page, not the model's accuracy.
            page.get_by_text("Options").click()
            slider = page.locator("#threshold input[type=number]")
            slider.fill("0")
            slider.press("Enter")
            page.locator("#segment").click()

            status = page.locator("#status")
            expect(status).to_contain_text("parts found", timeout=60_000)
            overlay = page.locator("#overlay img").first
            expect(overlay).to_be_visible()
            natural_width = overlay.evaluate("img => img.naturalWidth")
            assert natural_width > 0, "the overlay image did not load"

            legend = page.locator("#overlay .legend-item")
            expect(legend.first).to_be_visible()
            names = [text.strip() for text in legend.all_inner_texts()]
            typed_names = {f"cat's {part}" for part in typed_parts}
            assert names, "the legend is empty"
            assert set(names) <= typed_names, f"legend {names} shows names that were not typed"
            table = page.locator("#parts-table")
            for name in names:
                expect(table).to_contain_text(name)
            # The downloads are real files: the label map PNG has the photo's size, the JSON names the parts.
            png_link = page.locator("#downloads a[href*='parts.png']").first.get_attribute("href")
            json_link = page.locator("#downloads a[href*='segmentation.json']").first.get_attribute("href")
            label_map = Image.open(io.BytesIO(page.request.get(png_link).body()))
            assert label_map.size == (chelsea.shape[1], chelsea.shape[0])
            report = page.request.get(json_link).json()
            assert [part["name"] for part in report["parts"]] == names
            # Hovering a legend entry highlights that part (Gradio's AnnotatedImage behaviour).
            legend.first.hover()
            masks = page.locator("#overlay img.mask")
            expect(masks).to_have_count(len(names))
            expect(page.locator("#overlay img.mask.active")).to_have_count(1)
            expect(page.locator("#overlay img.mask.inactive")).to_have_count(len(names) - 1)
            page.screenshot(path=str(shot), full_page=True)
            # Picking a bundled example fills both the image and its vocabulary.
            page.get_by_text("person: head, hair").first.click()
            expect(box).to_have_value(re.compile(r"^person: head, hair"))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot: {shot}")
