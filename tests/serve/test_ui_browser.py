"""The page of `bind serve --ui` in a real browser: the distribution's headless Chromium,
driven by Playwright. It loads; a text search shows the expected pictures; a picked file, a
dropped file and a recording from the (fake) microphone search; a segment's player starts at
its time; a file name with markup shows as text; an undecodable file shows why; a file outside
the collection is refused. Set BIND_SCREENSHOT_DIR to keep the page's screenshot there (the
README's docs/ui.png is made so)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from chromium_support import CHROMIUM_HINT, chromium
from ui_support import MARKUP, make_collection, start_page

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None, reason=CHROMIUM_HINT),
]

playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' brings playwright")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-browser")
    return tmp, make_collection(tmp)


@pytest.fixture(scope="module")
def served(made):
    page = start_page(made[0])
    yield page
    assert page.stop() == 0


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=chromium(),
            # a microphone that plays a beep, granted without asking
            args=["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser, served):
    """The page, loaded; any script error or alert fails the test."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.grant_permissions(["microphone"])
    tab = context.new_page()
    troubles: list[str] = []
    tab.on("pageerror", lambda error: troubles.append(f"script error: {error}"))
    tab.on("dialog", lambda dialog: (troubles.append(f"a dialog: {dialog.message}"), dialog.dismiss()))
    tab.goto(served.url)
    tab.wait_for_selector("body[data-ready='1']", timeout=30_000)
    yield tab
    context.close()
    assert not troubles, troubles


def search_for(page, text: str, kind: str = "") -> None:
    if kind:
        page.click("details summary")
        page.select_option("#kind", kind)
    page.fill("#text", text)
    page.press("#text", "Enter")
    page.wait_for_function("() => document.querySelector('#status').textContent.endsWith('results')", timeout=60_000)


def cards(page) -> list[dict]:
    return page.eval_on_selector_all("#results .card", """cards => cards.map(c => ({
        path: c.dataset.path, kind: c.dataset.kind,
        picture: c.querySelector('img') ? c.querySelector('img').naturalWidth : 0,
        placeholder: c.querySelector('.placeholder') ? c.querySelector('.placeholder').textContent : null,
        pathText: c.querySelector('.path').textContent}))""")


def test_the_page_loads_with_the_collections_state(page):
    assert page.title() == "bind"
    state = page.inner_text("#state")
    assert "8 items" in state and "6 image" in state and "1 audio" in state and "exact" in state


def test_a_text_search_shows_the_pictures_as_thumbnails(page, made):
    search_for(page, "a dog", kind="image")
    page.wait_for_function("""() => [...document.querySelectorAll('#results img')].every(i => i.complete)
        && document.querySelectorAll('#results .placeholder').length == 2""", timeout=60_000)
    shown = cards(page)
    folder = made[1]["folder"]
    # the six pictures: each drawn but the one that no longer decodes, and the one swapped for
    # a link, which is no file this server shows
    assert sorted(Path(c["path"]).name for c in shown) == sorted(
        ["dog_image.jpg", "car_image.jpg", "bird_image.jpg", MARKUP, "broken.jpg", "swapped.jpg"])
    drawn = {Path(c["path"]).name for c in shown if c["picture"] > 0}
    assert drawn == {"dog_image.jpg", "car_image.jpg", "bird_image.jpg", MARKUP}
    broken = next(c for c in shown if c["path"].endswith("broken.jpg"))
    assert "cannot read image" in broken["placeholder"]
    swapped = next(c for c in shown if c["path"].endswith("swapped.jpg"))
    assert "not a file this server can show" in swapped["placeholder"]
    assert all(c["path"].startswith(str(folder)) for c in shown)
    out = os.environ.get("BIND_SCREENSHOT_DIR")
    shot = page.screenshot(full_page=False)
    assert shot.startswith(b"\x89PNG")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "ui.png").write_bytes(shot)


def test_a_file_name_with_markup_shows_as_text(page):
    search_for(page, "a dog", kind="image")
    shown = [c["pathText"] for c in cards(page)]
    assert any(text.endswith(MARKUP) for text in shown)
    assert page.locator("img[src='x']").count() == 0  # the name made no element


def test_a_picked_file_and_a_dropped_file_search(page, made, tmp_path):
    query = tmp_path / "query.jpg"
    shutil.copy(made[1]["bird_image.jpg"], query)
    page.set_input_files("#search .drop input[type=file]", str(query))
    page.wait_for_function("() => document.querySelector('#status').textContent.endsWith('results')", timeout=60_000)
    first = cards(page)[0]
    assert Path(first["path"]).name in ("bird_image.jpg", "swapped.jpg")
    assert page.inner_text("#terms").startswith("query.jpg")
    # a drop: the browser's own DataTransfer, holding the dog's bytes
    page.click("#terms button")  # the picked file is removed
    data = list(made[1]["dog_image.jpg"].read_bytes())
    page.evaluate("""bytes => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], 'dropped.jpg', {type: 'image/jpeg'}));
        document.querySelector('#status').textContent = '';
        document.querySelector('#search .drop').dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
    }""", data)
    page.wait_for_function("() => document.querySelector('#status').textContent.endsWith('results')", timeout=60_000)
    assert Path(cards(page)[0]["path"]).name in ("dog_image.jpg", MARKUP)


def test_more_like_this_and_the_keyboard(page):
    search_for(page, "a dog", kind="image")
    page.focus("#results .card")
    page.keyboard.press("ArrowRight")
    second = page.evaluate("document.activeElement.dataset.path")
    assert second == cards(page)[1]["path"]
    page.evaluate("document.querySelector('#status').textContent = ''")
    page.keyboard.press("m")
    page.wait_for_function("() => document.querySelector('#status').textContent.endsWith('results')", timeout=60_000)
    assert second not in [c["path"] for c in cards(page)]
    assert page.inner_text("#terms").startswith(Path(second).name)


def test_a_recording_from_the_microphone_searches(page):
    page.click("#record")
    page.wait_for_function("() => document.querySelector('#record').textContent == 'Stop'")
    page.wait_for_timeout(1500)
    page.click("#record")
    page.wait_for_function("() => document.querySelector('#status').textContent.endsWith('results')", timeout=60_000)
    assert cards(page)
    assert page.inner_text("#terms").startswith("recording")


def test_a_segment_result_plays_from_its_start(page):
    """A hit with start and end (a segment of a longer file): its player seeks there."""
    search_for(page, "a bird", kind="audio")
    hit = page.evaluate("document.querySelector('#results .card').hit")
    assert hit["kind"] == "audio" and "start" not in hit
    page.evaluate("hit => showResults([{...hit, start: 2.5, end: 4}])", hit)
    page.wait_for_function("() => document.querySelector('#results audio').readyState >= 1", timeout=30_000)
    assert page.inner_text("#results .segment") == "from 2.5 s to 4.0 s"
    assert page.evaluate("document.querySelector('#results audio').currentTime") == pytest.approx(2.5, abs=0.05)
    page.focus("#results .card")
    page.keyboard.press("Enter")
    page.wait_for_function("() => !document.querySelector('#results audio').paused", timeout=30_000)
    assert page.evaluate("document.querySelector('#results audio').currentTime") >= 2.5


def test_a_file_outside_the_collection_is_refused(page, made):
    answers = page.evaluate("""async paths => Promise.all(paths.map(async p => {
        const answer = await fetch(p); return [answer.status, await answer.text()];
    }))""", ["/ui/file/default/999999", "/ui/file/default/..%2F..%2Fetc%2Fpasswd",
             f"/ui/file/default/{made[1]['secret']}"])
    secret = made[1]["secret"].read_bytes().decode("latin-1")[:50]
    for status, body in answers:
        assert status == 404 and secret not in body
    search_for(page, "a dog", kind="image")
    swapped = page.evaluate("[...document.querySelectorAll('#results .card')].find(c => c.dataset.path.endsWith('swapped.jpg')).hit")
    status = page.evaluate("async id => (await fetch(`/ui/file/default/${id}`)).status", swapped["id"])
    assert status == 404


def test_compare_shows_a_heat_map_and_classify_the_labels(page, made):
    page.click("button[data-panel=compare]")
    page.set_input_files("#compare .drop input[type=file]",
                         [str(made[1]["dog_image.jpg"]), str(made[1]["car_image.jpg"])])
    page.fill("#compare .adder input", "a dog")
    page.press("#compare .adder input", "Enter")
    page.click("#compare-run")
    page.wait_for_selector("#heat td")
    assert page.locator("#heat tr").count() == 4 and page.locator("#heat td").count() == 9
    assert page.eval_on_selector("#heat td", "td => getComputedStyle(td).backgroundColor") != "rgba(0, 0, 0, 0)"
    page.click("button[data-panel=classify]")
    page.fill("#labels", "dog, car")
    page.set_input_files("#classify .drop input[type=file]", str(made[1]["dog_image.jpg"]))
    page.click("#classify-run")
    page.wait_for_selector("#labelled td")
    assert page.inner_text("#labelled th") == "dog_image.jpg"
    assert "%" in page.inner_text("#labelled td")
