"""Token lengths measured up front equal the featurised lengths exactly, for text and image
examples, without decoding photos."""

import numpy as np
import pytest

from rmpl_jax.data.featurize import Featurizer
from rmpl_jax.data.synthetic import generate_split
from rmpl_jax.m2e2 import render
from rmpl_jax.models.qwen2_vl.processor import QwenProcessor
from tests.testing.codecs import codec_for
from tests.testing.tiny_tokenizer import save_tiny_processor_files, write_min_config

SIDE = 56


@pytest.fixture(scope="module")
def featurizer(tmp_path_factory):
    hf_dir = tmp_path_factory.mktemp("proc")
    save_tiny_processor_files(hf_dir, min_pixels=SIDE * SIDE)
    write_min_config(hf_dir)
    return Featurizer(QwenProcessor.from_dir(hf_dir), SIDE)


def test_token_lengths_are_exact(featurizer, tmp_path):
    split = generate_split("t", 4, tmp_path / "img", seed=3)
    examples = [ex for s in split.sentences for task in ("text_ee", "text_argument") for ex in render.render(task, s)]
    codec = codec_for("qwen2_5_vl")
    examples += [ex for i in split.images for ex in render.render("visual_ee", i, image_size=(SIDE, SIDE), codec=codec)]
    assert any(ex.image for ex in examples) and any(not ex.image for ex in examples)
    measured = featurizer.token_lengths(examples)
    actual = np.asarray([len(featurizer(ex)["input_ids"]) for ex in examples])
    np.testing.assert_array_equal(measured, actual)
    assert featurizer.token_lengths([]).shape == (0,)
