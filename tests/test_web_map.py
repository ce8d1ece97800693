"""The web map in a real browser: Playwright drives Debian's Chromium (headless) against the live service.

Screenshots are written to ``test-artifacts/`` so a person can look at what the tests saw.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from harm_index.weights import Scheme
from harmmap.settings import REPO_ROOT, Settings

HAMPSHIRE = "E23000030"
ARTIFACTS = REPO_ROOT / "test-artifacts"
BACKGROUND = (0xF4, 0xF4, 0xF1)
# Software WebGL: the test machines have no GPU.
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]


@pytest.fixture(scope="module")
def map_server(
    settings: Settings, layers: Scheme, serve: Callable[[Settings], AbstractContextManager[str]]
) -> Iterator[str]:
    with serve(settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is installed by scripts/bootstrap.sh"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, map_server: str, api_keys: dict[str, str]) -> Iterator[tuple[Page, list[str]]]:
    """The map page for a lead, whose key the page sends in the X-API-Key header of every request."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('harmmap-token', {api_keys['lead']!r})")
    tab = context.new_page()
    keyless: list[str] = []
    tab.on(
        "request",
        lambda r: (
            keyless.append(r.url)
            if r.url.startswith(map_server)
            and r.resource_type not in ("document", "script", "stylesheet")
            and "x-api-key" not in r.headers
            else None
        ),
    )
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.goto(f"{map_server}/map")
    _wait_ready(tab)
    yield tab, problems
    # Tiles and layer values went with the key in a header, never in the URL.
    assert keyless == []
    context.close()


def _wait_ready(tab: Page) -> None:
    tab.wait_for_selector("body[data-state=ready]", timeout=90_000)


def _choose(tab: Page, select: str, value: str) -> None:
    tab.evaluate("() => { document.body.dataset.state = 'changing'; }")
    tab.select_option(select, value)
    _wait_ready(tab)


def _shot(tab: Page, name: str) -> Image.Image:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"web-map-{name}.png"
    tab.screenshot(path=str(path))
    return Image.open(path)


def test_page_loads_without_console_errors_and_tiles_render(page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    _choose(tab, "#force", HAMPSHIRE)
    assert tab.input_value("#force") == HAMPSHIRE
    _choose(tab, "#period", "2018-12")
    box = tab.locator("#map").bounding_box()
    assert box is not None
    image = _shot(tab, "hampshire-harm-wards")
    # The map fits the force, so its middle is the force's extent: most pixels there are coloured areas.
    x0, y0 = int(box["x"] + box["width"] * 0.3), int(box["y"] + box["height"] * 0.3)
    x1, y1 = int(box["x"] + box["width"] * 0.7), int(box["y"] + box["height"] * 0.7)
    pixels = np.asarray(image.convert("RGB"), dtype=int)[y0:y1, x0:x1]
    background = (np.abs(pixels - np.array(BACKGROUND)).sum(axis=2) <= 6).mean()
    assert background < 0.3, f"{background:.0%} of the force's extent is background"
    assert problems == []


def test_switching_layers_changes_the_legend(page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    _choose(tab, "#force", HAMPSHIRE)
    harm_title = tab.inner_text("#legend-title")
    harm_labels = tab.locator("#legend li").all_inner_texts()
    _choose(tab, "#layer", "deprivation")
    assert tab.inner_text("#legend-title") == "Deprivation decile (IMD 2019)" != harm_title
    labels = tab.locator("#legend li").all_inner_texts()
    assert labels != harm_labels and len(labels) == 11  # ten deciles and "no value"
    assert tab.is_disabled("#classes")  # deciles are fixed classes
    assert tab.is_disabled("#period")  # IMD 2019 does not change with the period
    _choose(tab, "#layer", "ethnic_share")
    assert tab.is_visible("#group")
    _choose(tab, "#group", "Asian")
    assert tab.inner_text("#legend-title").endswith("Asian")
    # Every area is coloured by this layer's class: no state left over from the layers before.
    stale = tab.evaluate(
        """() => window.harmmap.layer.areas.filter(a => (window.harmmap.map.getFeatureState(
               {source: 'areas', sourceLayer: 'wards', id: a.code}).c ?? -1) !== (a.class ?? -1)).length"""
    )
    assert stale == 0
    _shot(tab, "hampshire-asian-share")
    _choose(tab, "#layer", "calls")
    assert "SYNTHETIC" in tab.inner_text("#notes")
    assert tab.is_visible("#marking")
    assert problems == []


def _ward(tab: Page, name: str) -> dict[str, Any]:
    area: dict[str, Any] = tab.evaluate("name => window.harmmap.layer.areas.find(a => a.name === name)", name)
    assert area, name
    return area


def test_clicking_a_ward_opens_its_popup(page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    _choose(tab, "#force", HAMPSHIRE)
    _choose(tab, "#period", "2018-12")
    area = _ward(tab, "Bargate")
    tab.evaluate("p => window.harmmap.map.jumpTo({center: p, zoom: 12})", area["point"])
    tab.wait_for_function("() => window.harmmap.map.loaded() && !window.harmmap.map.isMoving()")
    tab.wait_for_timeout(500)
    x, y = tab.evaluate("p => { const q = window.harmmap.map.project(p); return [q.x, q.y]; }", area["point"])
    box = tab.locator("#map").bounding_box()
    assert box is not None
    tab.mouse.click(box["x"] + x, box["y"] + y)
    popup = tab.locator(".maplibregl-popup")
    popup.wait_for(timeout=10_000)
    text = popup.inner_text()
    assert "Bargate" in text and area["code"] in text
    assert "95% interval" in text and "incidents" in text
    assert popup.locator("a[href*='/summary']").count() == 1
    _shot(tab, "bargate-popup")
    assert problems == []


def test_keyboard_finds_an_area_and_opens_its_popup(page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    _choose(tab, "#force", HAMPSHIRE)
    area = _ward(tab, "Bargate")
    search = tab.locator("#area-search")
    search.focus()
    search.fill(f"Bargate ({area['code']})")
    search.press("Enter")
    search.dispatch_event("change")
    popup = tab.locator(".maplibregl-popup")
    popup.wait_for(timeout=10_000)
    assert "Bargate" in popup.inner_text()
    tab.keyboard.press("Escape")
    popup.wait_for(state="detached", timeout=5_000)
    assert problems == []


def test_without_a_key_force_held_layers_are_offered_but_disabled(browser: Browser, map_server: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.goto(f"{map_server}/map")
    _wait_ready(tab)
    _choose(tab, "#force", HAMPSHIRE)
    calls = tab.locator("#layer option[value=calls]")
    assert calls.is_disabled()
    assert "needs an analyst key" in calls.inner_text()
    assert not tab.locator("#layer option[value=harm_rate]").is_disabled()
    context.close()
