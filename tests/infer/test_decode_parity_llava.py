"""Greedy decoding of a LLaVA with photos equals transformers' greedy `generate`, token for
token (tiny random model, fp32, CPU): a left-padded batch of three, two rows with a photo and
one text-only, one row stopping early at its end token. The decoder reaches the tower only
through the family's `image_features` hook and the model's `prefill(image_features=...)`."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rmpl_jax.infer.decode import Decoder, Prompt  # noqa: E402
from rmpl_jax.models import llava as LV  # noqa: E402
from tests.testing.hf_tiny_llava import IMAGE_TOKEN_ID, make_tiny_llava  # noqa: E402

MAX_NEW = 8


def _hf_generate(model, rows, pixels, eos):
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :], mask[i, width - len(r) :] = r, 1
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            pixel_values=torch.tensor(pixels),
            max_new_tokens=MAX_NEW,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=0,
        ).numpy()[:, width:]
    gens = []
    for row in out:
        hits = np.flatnonzero(row == eos)
        gens.append(row[: hits[0] + 1] if len(hits) else row)
    return gens


def test_greedy_with_photos_equals_hf_generate(tmp_path):
    hf_dir, torch_model = make_tiny_llava(tmp_path, "default")
    model = LV.load_hf(hf_dir)
    n = model.config.tokens_per_image
    rng = np.random.default_rng(4)
    photo = lambda k: np.concatenate([rng.integers(3, 290, 3), np.full(n, IMAGE_TOKEN_ID), rng.integers(3, 290, k)])  # noqa: E731
    rows = [photo(4), rng.integers(3, 290, 9), photo(8)]
    pixels = rng.normal(size=(2, 3, 28, 28)).astype(np.float32)
    eos = int(_hf_generate(torch_model, rows, pixels, eos=-1)[0][3])  # the first row stops mid-way
    ref = _hf_generate(torch_model, rows, pixels, eos=eos)
    dec = Decoder(model, batch_size=4, max_new_tokens=MAX_NEW, eos_ids=(eos,), pad_id=0, buckets=(32,))
    prompts = [
        Prompt(rows[0], {"pixel_values": pixels[:1]}),
        Prompt(rows[1]),
        Prompt(rows[2], {"pixel_values": pixels[1:]}),
    ]
    ours = dec.generate(prompts)
    for i, (o, r) in enumerate(zip(ours, ref)):
        assert o.tokens.tolist() == r.tolist(), f"row {i}: ours {o.tokens.tolist()} HF {r.tolist()}"
    assert ours[0].finished and len(ours[0].tokens) <= 4
