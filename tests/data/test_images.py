"""Photo checks: every way a photo can be unusable is a DataError naming the file, found
before training or decoding; lenient runs skip and count."""

import pytest
from PIL import Image

from rmpl_jax.data import images
from rmpl_jax.data.featurize import load_image
from rmpl_jax.io.read_report import DataError
from rmpl_jax.io.skips import SkipRegistry


@pytest.fixture
def jpeg(tmp_path):
    path = tmp_path / "good.jpg"
    Image.effect_noise((64, 48), 40).convert("RGB").save(path, quality=90)
    return path


def _bad(tmp_path, jpeg):
    raw = jpeg.read_bytes()
    bad = {
        "truncated.jpg": raw[: len(raw) // 2],
        "no_end.jpg": raw[:-2],  # cut at the very end: the end-of-image marker is gone
        "empty.jpg": b"",
        "text.jpg": b"this is not an image\n",
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in bad}


def test_good_photo_size(jpeg):
    assert images.check_photo(str(jpeg)) == (64, 48)


@pytest.mark.parametrize(
    "name, message",
    [
        ("truncated.jpg", "unreadable image .*truncated"),
        ("no_end.jpg", "unreadable image"),
        ("empty.jpg", "empty file"),
        ("text.jpg", "unreadable image .*cannot identify"),
    ],
)
def test_bad_photo_named(tmp_path, jpeg, name, message):
    path = _bad(tmp_path, jpeg)[name]
    with pytest.raises(DataError, match=f"{path}: {message}"):
        images.check_photo(str(path))
    with pytest.raises(DataError, match=str(path)):
        load_image(str(path), 56)  # featurisation names the file too


def test_huge_photo(jpeg, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 64 * 48 - 1)
    with pytest.raises(DataError, match="64x48 = 3072 pixels, more than the 3071"):
        images.check_photo(str(jpeg))


def test_check_photos_strict_and_lenient(tmp_path, jpeg):
    bad = _bad(tmp_path, jpeg)
    paths = [str(jpeg), *map(str, bad.values())]
    with pytest.raises(
        DataError, match=r"\(and 3 more unreadable photos\); replace or remove it, or set --config.x=True"
    ):
        images.check_photos(
            paths, lenient=False, skips=SkipRegistry(), what="swig.json", lenient_flag="--config.x=True"
        )
    skips = SkipRegistry()
    assert images.check_photos(paths, lenient=True, skips=skips, what="swig.json") == {str(jpeg): (64, 48)}
    assert skips.counts() == {"swig.json: unreadable photo": 4}
