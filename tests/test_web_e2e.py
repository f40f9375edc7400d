"""The web calculator end to end: Gradio on loopback, driven by Playwright with the system Chromium.

Skips (with the reason) when gradio, playwright or /usr/bin/chromium is missing. The numbers the
page shows are compared with :func:`hf_gpu_estimator.estimate` for the same inputs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("HFGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "images"

missing = [name for name in ("gradio", "playwright") if importlib.util.find_spec(name) is None]
if missing:
    pytest.skip(f"web e2e needs {', '.join(missing)}: pip install -e '.[web,test]'", allow_module_level=True)
if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
    pytest.skip(f"web e2e needs Chromium at {CHROMIUM} (apt-get install -y chromium, or set HFGE_CHROMIUM)",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from hf_gpu_estimator.web import build_app

    app = build_app()
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


@pytest.fixture(scope="module")
def page(app_url: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        except Exception as e:  # a Chromium that cannot start here (missing libraries): say so, do not fail
            pytest.skip(f"Chromium at {CHROMIUM} did not start: {str(e).splitlines()[0]}")
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(app_url, wait_until="domcontentloaded")
        yield page
        browser.close()


def _fill(page: object, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first  # type: ignore[attr-defined]
    box.fill(value)
    box.press("Tab")


def _catalog(model_id: str) -> object:
    """The bundled catalog's spec: what the page uses for catalog models unless "read the Hub" is ticked."""
    from hf_gpu_estimator.sources.catalog import lookup

    return lookup(model_id)


def _gib_cell(text: str, label: str) -> str:
    match = re.search(re.escape(label) + r"\D*?([\d,]+\.\d\d GiB)", text)
    assert match, f"{label!r} not found in: {text[:500]}"
    return match.group(1)


def test_inference_numbers_match_estimate(page: object) -> None:
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.report import gib

    p = page
    p.locator("#summary").get_by_text("per device").wait_for(timeout=60_000)  # type: ignore[attr-defined]
    _fill(p, "model", "meta-llama/Llama-2-7b-hf")
    p.locator("#task").get_by_role("radio", name="inference").check()  # type: ignore[attr-defined]
    _fill(p, "batch_size", "1")
    _fill(p, "seq_len", "1024")
    _fill(p, "new_tokens", "128")  # not the default: the numbers below come from this submission
    expected = estimate(_catalog("meta-llama/Llama-2-7b-hf"), batch_size=1, seq_len=1024, new_tokens=128, gpu="A100-80GB-SXM")
    p.locator("#estimate").click()  # type: ignore[attr-defined]
    p.locator("#summary").get_by_text("1024 prompt + 128 new tokens").wait_for(timeout=60_000)  # type: ignore[attr-defined]
    breakdown = p.locator("#breakdown").inner_text()  # type: ignore[attr-defined]
    assert _gib_cell(breakdown, "weights") == gib(expected.memory.components["weights"])
    assert _gib_cell(breakdown, "kv cache") == gib(expected.memory.components["kv_cache"])
    assert _gib_cell(breakdown, "device total") == gib(expected.memory.device_total_bytes)
    assert gib(expected.memory.device_total_bytes) in p.locator("#summary").inner_text()  # type: ignore[attr-defined]
    fits = p.locator("#fits").inner_text()  # type: ignore[attr-defined]
    assert "RTX-4090" in fits and "H100-SXM-80GB" in fits and "fits" in fits
    assert "$/hour" in p.locator("#plan").inner_text()  # type: ignore[attr-defined]
    p.locator("#plot img").wait_for(timeout=30_000)  # type: ignore[attr-defined]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(SCREENSHOTS / "web_inference.png"), full_page=True)  # type: ignore[attr-defined]


def test_training_that_does_not_fit_shows_suggestions(page: object) -> None:
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.report import gib

    p = page
    p.locator("#task").get_by_role("radio", name="training").check()  # type: ignore[attr-defined]
    _fill(p, "batch_size", "4")
    gpu = p.locator("#gpu input").first  # type: ignore[attr-defined]
    gpu.fill("RTX-4090")
    gpu.press("Enter")
    expected = estimate(_catalog("meta-llama/Llama-2-7b-hf"), task="training", batch_size=4, seq_len=1024, gpu="RTX-4090")
    p.locator("#estimate").click()  # type: ignore[attr-defined]
    p.locator("#summary").get_by_text("RTX-4090").wait_for(timeout=60_000)  # type: ignore[attr-defined]
    summary = p.locator("#summary").inner_text()  # type: ignore[attr-defined]
    assert gib(expected.memory.device_total_bytes) in summary and "not" in summary
    fits = p.locator("#fits").inner_text()  # type: ignore[attr-defined]
    assert "does not fit" in fits and "--method qlora" in fits
    assert "total $" in p.locator("#plan").inner_text()  # type: ignore[attr-defined]
    p.locator("#plot img").wait_for(timeout=30_000)  # type: ignore[attr-defined]
    p.screenshot(path=str(SCREENSHOTS / "web_training.png"), full_page=True)  # type: ignore[attr-defined]


def _settled(p: object) -> None:
    """Wait until no output shows Gradio's "processing" overlay (a screenshot taken earlier is greyed out)."""
    p.wait_for_function("() => ![...document.querySelectorAll('.progress-text, .eta-bar')]"  # type: ignore[attr-defined]
                        ".some(e => e.offsetParent !== null)", timeout=60_000)


@pytest.mark.parametrize("width", [1280, 800])
def test_tables_do_not_wrap_inside_words(page: object, width: int) -> None:
    """At a laptop's and a narrow window's width: every number of the tables in view (no table scrolls or
    clips), every header cell on one line, plain units (no small capitals), the assumptions, the token
    field and the cost-table fields present, the verdict with its range in the summary."""
    p = page
    p.set_viewport_size({"width": width, "height": 1300})  # type: ignore[attr-defined]
    p.locator("#summary").get_by_text("per device").wait_for(timeout=60_000)  # type: ignore[attr-defined]
    _settled(p)
    p.locator("#task").get_by_role("radio", name="inference").check()  # type: ignore[attr-defined]
    _fill(p, "new_tokens", str(width // 10))  # this width's own answer, not the last one
    p.locator("#estimate").click()  # type: ignore[attr-defined]
    p.locator("#summary").get_by_text(f"1024 prompt + {width // 10} new tokens").wait_for(timeout=60_000)  # type: ignore[attr-defined]
    p.locator("#plot img").wait_for(timeout=30_000)  # type: ignore[attr-defined]
    _settled(p)
    assert p.locator("#request_rate input").count() == 1 and p.locator("#token_budget input").count() == 1  # type: ignore[attr-defined]
    assert re.search(r"(fits|tight|does not fit) — needs [\d.]+–[\d.]+ GiB", p.locator("#summary").inner_text())  # type: ignore[attr-defined]
    assert p.locator("#token input").count() == 1  # type: ignore[attr-defined]
    box = p.locator("#assumptions_box")  # type: ignore[attr-defined]
    if "catalog" not in box.inner_text():
        box.get_by_text("Assumptions").first.click()
    p.wait_for_function("() => document.querySelector('#assumptions_box').innerText.includes('catalog')",
                        timeout=30_000)  # type: ignore[attr-defined]
    heights = p.evaluate("""() => [...document.querySelectorAll('#breakdown th, #fits th, #plan th')].map(
        th => [th.innerText, th.getBoundingClientRect().height,
               parseFloat(getComputedStyle(th).lineHeight) || parseFloat(getComputedStyle(th).fontSize) * 1.6])""")  # type: ignore[attr-defined]
    assert heights
    wrapped = [text for text, height, line in heights if height > 2.2 * line]
    assert not wrapped, wrapped
    clipped = p.evaluate("""() => [...document.querySelectorAll('#breakdown table, #fits table, #plan table')]
        .filter(t => t.scrollWidth > t.clientWidth + 1 || t.getBoundingClientRect().right > window.innerWidth)
        .map(t => t.innerText.split('\\n')[0])""")  # type: ignore[attr-defined]
    assert not clipped, clipped
    caps = p.evaluate("""() => [...document.querySelectorAll('#summary *, #breakdown *, #fits *, #plan *')]
        .map(e => getComputedStyle(e)).filter(s => s.fontVariantCaps !== 'normal' || s.fontFamily.includes('Source Sans'))
        .length""")  # type: ignore[attr-defined]
    assert caps == 0
    p.screenshot(path=str(SCREENSHOTS / f"web_{width}px.png"), full_page=True)  # type: ignore[attr-defined]


def test_an_error_clears_when_the_input_is_fixed(page: object) -> None:
    """An emptied number is refused with a message; typing a valid one answers again without pressing Estimate."""
    p = page
    p.set_viewport_size({"width": 1280, "height": 1300})  # type: ignore[attr-defined]
    p.locator("#summary").get_by_text("per device").wait_for(timeout=60_000)  # type: ignore[attr-defined]
    _settled(p)
    _fill(p, "batch_size", "")
    p.locator("#estimate").click()  # type: ignore[attr-defined]
    p.locator("#summary").get_by_text("batch_size").wait_for(timeout=60_000)  # type: ignore[attr-defined]
    assert "Error:" in p.locator("#summary").inner_text()  # type: ignore[attr-defined]
    _fill(p, "batch_size", "2")  # no click: leaving the field answers again
    p.locator("#summary").get_by_text("batch 2").wait_for(timeout=60_000)  # type: ignore[attr-defined]
    assert "Error:" not in p.locator("#summary").inner_text()  # type: ignore[attr-defined]
    _fill(p, "token_budget", "0")
    p.locator("#estimate").click()  # type: ignore[attr-defined]
    p.locator("#summary").get_by_text("token_budget").wait_for(timeout=60_000)  # type: ignore[attr-defined]
    _fill(p, "token_budget", "2e8")
    p.locator("#summary").get_by_text("needs").wait_for(timeout=60_000)  # type: ignore[attr-defined]


def test_fleet_tab_plans_the_example(page: object) -> None:
    p = page
    p.get_by_role("tab", name="Fleet").click()  # type: ignore[attr-defined]
    p.locator("#plan_fleet").click()  # type: ignore[attr-defined]
    p.locator("#fleet_plan").get_by_text("Fleet total").wait_for(timeout=120_000)  # type: ignore[attr-defined]
    text = p.locator("#fleet_plan").inner_text()  # type: ignore[attr-defined]
    assert "$/month" in text and "Error" not in text
