"""The report in a real browser: headless Chromium draws it (tables, photos with their boxes)
and runs its filter script. Skips with a reason where Chromium is not installed (Debian:
`apt-get install chromium`)."""

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from rmpl_jax.eval.photos import GOLD_COLOUR, PRED_COLOUR
from rmpl_jax.eval.report import write_report
from tests.testing.report_cases import small_case

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (apt-get install chromium)")
WINDOW = (1200, 2400)


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ]
    return subprocess.run([BROWSER, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def _near(pixels: np.ndarray, colour, tolerance: int = 40) -> int:
    return int((np.abs(pixels.astype(int) - np.array(colour)).max(axis=-1) <= tolerance).sum())


@pytest.fixture
def page(tmp_path):
    corpus, predictions = small_case(tmp_path)
    path = tmp_path / "report.html"
    write_report(str(path), corpus, predictions, title="small case")
    return path


def test_page_renders_with_photos_and_boxes(tmp_path, page):
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    not_white = (pixels < 245).any(axis=-1).mean()
    assert not_white > 0.05, f"only {not_white:.1%} of the screenshot is not white"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # text, tables and photos, not a blank
    # the drawn boxes show: gold green and predicted magenta from the embedded thumbnails
    assert _near(pixels, GOLD_COLOUR) > 100 and _near(pixels, PRED_COLOUR) > 100


def test_filter_script_runs(tmp_path, page):
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert '<span id="filter-count">9 of 9 cards shown</span>' in dom
