"""A synthetic split written as an M2E2 annotations directory, for the tests that read M2E2
files (predict, remote paths)."""

from __future__ import annotations

import os
from pathlib import Path

from rmpl_jax.data.synthetic import SyntheticSplit, write_m2e2_format


def write_m2e2_annotations(split: SyntheticSplit, ann_dir: Path, scratch: Path) -> Path:
    """M2E2's five files for `split` in `ann_dir` (created): its sentences and photo events as
    the text-only and image-only files, empty multimedia files, and coref lines naming
    `<image_id>.jpg` as M2E2's do. `scratch` holds the intermediate files."""
    files = write_m2e2_format(split, scratch)
    ann_dir.mkdir(parents=True, exist_ok=True)
    os.replace(files["text"], ann_dir / "text_only_event.json")
    (ann_dir / "text_multimedia_event.json").write_text("[]")
    os.replace(files["image"], ann_dir / "image_only_event.json")
    (ann_dir / "image_multimedia_event.json").write_text("{}")
    with open(files["coref"], encoding="utf-8") as f:
        (ann_dir / "crossmedia_coref.txt").write_text(f.read().replace(".png\t", ".jpg\t"))
    os.remove(files["coref"])
    return ann_dir
