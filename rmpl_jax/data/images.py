"""Photo checks before training or decoding: a photo that cannot be read is found when the
sources are built, never inside a Grain worker or after hours of decoding.

Each photo is opened and decoded at 1/8 scale (JPEG's DCT scaling: every byte of the
compressed stream is still read, so a truncated or broken file fails here at a fraction
of the cost of a full decode). Checks run in threads (PIL releases the GIL to decode).
"""

from __future__ import annotations

import concurrent.futures
import io
import os
from collections.abc import Iterable, Sequence

from PIL import Image

from rmpl_jax.io.paths import is_remote, read_bytes
from rmpl_jax.io.read_report import DataError
from rmpl_jax.io.skips import SkipRegistry

# PIL refuses images beyond twice this as decompression bombs; we refuse them beyond it.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


def _photo_source(path: str) -> str | io.BytesIO:
    # A remote photo is read whole: PIL reads lazily, from a file that must stay open.
    return io.BytesIO(read_bytes(path)) if is_remote(path) else path


def open_photo(path: str) -> Image.Image:
    """`Image.open` of a local path or a URL (gs://...)."""
    return Image.open(_photo_source(path))


def check_photo(path: str) -> tuple[int, int]:
    """(width, height) of a readable photo; DataError naming the file otherwise (empty,
    not an image, truncated or corrupt, zero-size, larger than MAX_PIXELS)."""
    try:
        source = _photo_source(path)
        size = source.getbuffer().nbytes if isinstance(source, io.BytesIO) else os.path.getsize(path)
        if size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with Image.open(source) as image:
            width, height = image.size
            if width <= 0 or height <= 0:
                raise DataError(f"{path}: image of size {width}x{height}")
            if width * height > MAX_PIXELS:
                raise DataError(
                    f"{path}: {width}x{height} = {width * height} pixels, more than the {MAX_PIXELS} "
                    "this reader accepts (downscale it)"
                )
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # PIL reports truncation and corrupt streams as OSError, some bad headers as SyntaxError.
        raise DataError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None
    return width, height


def check_photos(
    paths: Iterable[str],
    *,
    lenient: bool,
    skips: SkipRegistry,
    what: str,
    lenient_flag: str = "--config.data.lenient=True",
    workers: int | None = None,
) -> dict[str, tuple[int, int]]:
    """{path: (width, height)} of the readable photos among `paths`.

    An unreadable photo raises its DataError (strict; the message says to set
    `lenient_flag` to skip them), or (lenient) is left out and counted in `skips` under
    "`what`: unreadable photo".
    """
    paths: Sequence[str] = list(dict.fromkeys(paths))
    workers = workers or min(32, (os.cpu_count() or 1) + 4)
    sizes, errors = {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(check_photo, p): p for p in paths}
        for future in concurrent.futures.as_completed(futures):
            try:
                sizes[futures[future]] = future.result()
            except DataError as e:
                errors.append(e)
    errors.sort(key=str)  # the report must not depend on thread timing
    if errors and not lenient:
        more = f" (and {len(errors) - 1} more unreadable photos)" if len(errors) > 1 else ""
        raise DataError(f"{errors[0]}{more}; replace or remove it, or set {lenient_flag} to skip unreadable photos")
    for e in errors:
        skips.add(f"{what}: unreadable photo", str(e))
    return {p: sizes[p] for p in paths if p in sizes}
