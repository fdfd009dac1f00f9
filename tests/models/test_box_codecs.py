"""Box codecs: smart_resize against transformers, quantisation bounds, clamping."""

import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmpl_jax.m2e2.records import Box
from rmpl_jax.models.llava.boxes import LlavaBoxes
from rmpl_jax.models.qwen2_vl.boxes import Qwen2VLBoxes, Qwen25VLBoxes, smart_resize
from tests.testing.codecs import codec_for


def _hf_smart_resize():
    # the torchvision-backed module is the canonical one; the PIL one is a copy of it
    for name in (
        "transformers.models.qwen2_vl.image_processing_qwen2_vl",
        "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl",
    ):
        try:
            return importlib.import_module(name).smart_resize
        except (ImportError, AttributeError):
            continue
    pytest.skip("transformers' smart_resize is not importable here")


SIDES = st.integers(1, 6000)


@settings(max_examples=300, deadline=None)
@given(
    h=SIDES,
    w=SIDES,
    budget=st.sampled_from(
        [
            {},
            {"min_pixels": 256 * 28 * 28, "max_pixels": 1280 * 28 * 28},
            {"factor": 14, "min_pixels": 100, "max_pixels": 200 * 200},
        ]
    ),
)
def test_smart_resize_matches_transformers(h, w, budget):
    hf = _hf_smart_resize()
    try:
        expected = hf(h, w, **budget)
    except ValueError:
        with pytest.raises(ValueError):
            smart_resize(h, w, **budget)
        return
    assert smart_resize(h, w, **budget) == expected


def test_smart_resize_known_sizes():
    assert smart_resize(480, 640) == (476, 644)
    assert smart_resize(4000, 6000) == (812, 1204)
    assert smart_resize(10, 10) == (56, 56)
    with pytest.raises(ValueError):
        smart_resize(1, 300)


CODECS = [Qwen2VLBoxes(), Qwen25VLBoxes(), LlavaBoxes()]


def _step(codec, size):
    """Grid step of the codec in original pixels, per axis (x, y)."""
    w, h = size
    if isinstance(codec, Qwen2VLBoxes):
        return w / 1000, h / 1000
    if isinstance(codec, Qwen25VLBoxes):
        rw, rh = codec.resized(size)
        return w / rw, h / rh
    side = max(w, h)
    return side / 100, side / 100


@st.composite
def boxes_in_images(draw):
    w, h = draw(st.integers(28, 5000)), draw(st.integers(28, 5000))
    xs = sorted(draw(st.floats(0, w)) for _ in range(2))
    ys = sorted(draw(st.floats(0, h)) for _ in range(2))
    return Box(xs[0], ys[0], xs[1], ys[1]), (w, h)


@settings(max_examples=300, deadline=None)
@given(bs=boxes_in_images(), codec=st.sampled_from(CODECS))
def test_quantisation_error_at_most_half_a_step(bs, codec):
    box, size = bs
    codes = codec.encode(box, size)
    back = codec.decode(codes, size)
    sx, sy = _step(codec, size)
    for got, want, s in zip((back.x1, back.y1, back.x2, back.y2), (box.x1, box.y1, box.x2, box.y2), (sx, sy, sx, sy)):
        assert abs(got - want) <= s / 2 + 1e-9 * max(size)
    assert codec.encode(back, size) == codes  # codes are fixed points
    if codec.decimals == 0:
        assert all(isinstance(v, int) for v in codes)
    lo_x, lo_y, hi_x, hi_y = codec.code_bounds(size)
    assert all(lo <= v <= hi for v, lo, hi in zip(codes, (lo_x, lo_y) * 2, (hi_x, hi_y) * 2))


@settings(max_examples=300, deadline=None)
@given(
    w=st.integers(28, 5000),
    h=st.integers(28, 5000),
    codec=st.sampled_from(CODECS),
    fractions=st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_codes_within_bounds_are_fixed_points(w, h, codec, fractions):
    lo_x, lo_y, hi_x, hi_y = codec.code_bounds((w, h))
    grid = 10**codec.decimals
    codes = []
    for f, lo, hi in zip(fractions, (lo_x, lo_y) * 2, (hi_x, hi_y) * 2):
        v = round((lo + f * (hi - lo)) * grid) / grid
        codes.append(int(v) if codec.decimals == 0 else v)
    assert codec.encode(codec.decode(codes, (w, h)), (w, h)) == tuple(codes)


def test_documented_example():
    box, size = Box(64, 48, 320, 240), (640, 480)
    assert codec_for("qwen2_vl").format(codec_for("qwen2_vl").encode(box, size)) == "[100, 100, 500, 500]"
    assert codec_for("qwen2_5_vl").format(codec_for("qwen2_5_vl").encode(box, size)) == "[64, 48, 322, 238]"
    assert codec_for("llava").format(codec_for("llava").encode(box, size)) == "[0.10, 0.20, 0.50, 0.50]"


def test_llava_padding_is_centred():
    codec = LlavaBoxes()
    # tall image 100x200: pasted at x offset 50 in a 200x200 square
    assert codec.encode(Box(0, 0, 100, 200), (100, 200)) == (0.25, 0.0, 0.75, 1.0)
    # codes in the padding decode clamped onto the image
    assert codec.decode((0.0, 0.0, 1.0, 1.0), (100, 200)) == Box(0, 0, 100, 200)
    assert codec.code_bounds((100, 200)) == (0.25, 0.0, 0.75, 1.0)


@pytest.mark.parametrize("codec", CODECS)
def test_decode_clamps_and_rejects(codec):
    size = (300, 200)
    big = codec.decode((-5, -5, 5000, 5000), size)
    assert big == Box(0, 0, 300, 200)
    for bad in [(1, 2, 3), (1, 2, 3, float("nan")), (1, 2, 3, float("inf"))]:
        with pytest.raises(ValueError):
            codec.decode(bad, size)
    with pytest.raises(ValueError):
        codec.decode((1, 2, 3, 4), (0, 10))
    assert codec.encode(Box(-50, -50, 900, 900), size) == codec.encode(Box(0, 0, 300, 200), size)
