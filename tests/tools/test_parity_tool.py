"""tools/parity.py run in-process on tiny saved checkpoints (torch CPU reference)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.testing.hf_tiny import make_tiny_qwen
from tests.testing.hf_tiny_gemma3 import make_tiny_gemma3, make_tiny_gemma3_text, tiny_gemma3_chat_dir
from tests.testing.hf_tiny_llama import make_tiny_llama, tiny_llama_chat_dir
from tests.testing.hf_tiny_llava import make_tiny_llava, tiny_llava_chat_dir
from tests.testing.tiny_tokenizer import save_tiny_processor_files
from tools import parity

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    dirs = {v: make_tiny_qwen(root / "bare", v)[0] for v in ("qwen2_vl", "qwen2_5_vl")}
    with_tok, _ = make_tiny_qwen(root / "tok", "qwen2_5_vl")
    save_tiny_processor_files(with_tok)
    dirs["qwen2_5_vl+tokenizer"] = with_tok
    return dirs


def _check(result, n_images, tokenizer):
    assert result["n_images"] == n_images
    assert result["tokenizer"] is tokenizer
    assert result["padding_tokens"] > 0  # the batch of two really is padded
    assert result["max_abs_logit_diff"] <= TOL, result
    assert result["argmax_agreement"] == 1.0, result


@pytest.mark.parametrize("variant", ["qwen2_vl", "qwen2_5_vl"])
def test_random_ids_without_tokenizer(tiny_dirs, variant, capsys):
    result = parity.main(["--hf-dir", str(tiny_dirs[variant]), "--images", "3"])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and json.loads(printed[0]) == result
    assert result["model_type"] == variant and result["dtype"] == "float32"
    _check(result, 3, tokenizer=False)
    grids = np.asarray(result["image_inputs"]["image_grid_thw"])
    assert len({tuple(g[1:]) for g in grids}) == 3  # different sizes
    assert result["image_inputs"]["pixel_values"][0] == int(grids.prod(1).sum())


def test_chat_prompts_with_tokenizer(tiny_dirs):
    result = parity.main(
        ["--hf-dir", str(tiny_dirs["qwen2_5_vl+tokenizer"]), "--images", "2", "--padding-side", "right"]
    )
    _check(result, 2, tokenizer=True)


def test_saved_reference_round_trip(tiny_dirs, tmp_path):
    hf_dir = str(tiny_dirs["qwen2_vl"])
    ref_file = tmp_path / "ref.npz"
    saved = parity.main(["--hf-dir", hf_dir, "--images", "1", "--save-reference", str(ref_file)])
    assert "max_abs_logit_diff" not in saved and ref_file.is_file()
    result = parity.main(["--hf-dir", hf_dir, "--reference", str(ref_file)])
    _check(result, 1, tokenizer=False)
    with pytest.raises(ValueError, match="made for model_type"):
        parity.main(["--hf-dir", str(tiny_dirs["qwen2_5_vl"]), "--reference", str(ref_file)])


@pytest.mark.parametrize("tokenizer", [False, True])
def test_llama_text_batch(tmp_path, tokenizer):
    hf_dir = tiny_llama_chat_dir(tmp_path, "tied_mha") if tokenizer else make_tiny_llama(tmp_path, "tied_mha")[0]
    result = parity.main(["--hf-dir", str(hf_dir)])
    assert result["model_type"] == "llama" and result["image_inputs"] == {}
    _check(result, 0, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="takes no images"):
        parity.main(["--hf-dir", str(hf_dir), "--images", "1"])


def test_llava_without_tokenizer(tmp_path):
    """A photo in each row of the padded batch (text only and one photo: tests/models/test_llava.py)."""
    hf_dir, _ = make_tiny_llava(tmp_path, "full_two_layers")
    result = parity.main(["--hf-dir", str(hf_dir), "--images", "2"])
    assert result["model_type"] == "llava" and set(result["image_inputs"]) == {"pixel_values"}
    _check(result, 2, tokenizer=False)
    assert result["image_inputs"]["pixel_values"] == [2, 3, 28, 28]


def test_llava_chat_prompts(tmp_path):
    result = parity.main(["--hf-dir", str(tiny_llava_chat_dir(tmp_path, "tied_no_bias")), "--images", "2"])
    _check(result, 2, tokenizer=True)


@pytest.mark.parametrize("tokenizer", [False, True])
def test_gemma3_text_batch(tmp_path, tokenizer):
    hf_dir = tiny_gemma3_chat_dir(tmp_path) if tokenizer else make_tiny_gemma3_text(tmp_path, "gqa_untied")[0]
    result = parity.main(["--hf-dir", str(hf_dir)])
    assert result["model_type"] == "gemma3_text" and result["image_inputs"] == {}
    _check(result, 0, tokenizer=tokenizer)


@pytest.mark.parametrize("tokenizer", [False, True])
def test_gemma3_photos(tmp_path, tokenizer):
    """Photos in both rows of the padded batch, squashed to the tower's square."""
    hf_dir = tiny_gemma3_chat_dir(tmp_path, multimodal=True) if tokenizer else make_tiny_gemma3(tmp_path)[0]
    result = parity.main(["--hf-dir", str(hf_dir), "--images", "3"])
    assert result["model_type"] == "gemma3" and result["image_inputs"]["pixel_values"] == [3, 3, 28, 28]
    _check(result, 3, tokenizer=tokenizer)


def test_unknown_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mllama"}))
    with pytest.raises(KeyError, match="no parity input builder"):
        parity.main(["--hf-dir", str(tmp_path)])
