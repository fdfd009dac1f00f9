"""Greedy decoding of a Llama equals transformers' greedy `generate`, token for token (tiny
random models, fp32, CPU): a left-padded batch where one row stops early at its end token,
for GQA and for tied-embedding MHA; prompts with pixels are refused by the text-only family."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rmpl_jax.infer.decode import Decoder, Prompt  # noqa: E402
from rmpl_jax.models import llama as L  # noqa: E402
from tests.testing.hf_tiny_llama import make_tiny_llama  # noqa: E402

MAX_NEW = 10


@pytest.fixture(scope="module", params=["gqa", "tied_mha"])
def pair(request, tmp_path_factory):
    hf_dir, torch_model = make_tiny_llama(tmp_path_factory.mktemp(request.param), request.param)
    return torch_model, L.load_hf(hf_dir)


def _hf_generate(model, rows, eos):
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :], mask[i, width - len(r) :] = r, 1
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            max_new_tokens=MAX_NEW,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=0,
        ).numpy()[:, width:]
    gens = []
    for row in out:  # up to and including the first end token
        hits = np.flatnonzero(row == eos)
        gens.append(row[: hits[0] + 1] if len(hits) else row)
    return gens


def test_greedy_equals_hf_generate(pair):
    torch_model, model = pair
    rng = np.random.default_rng(1)
    rows = [rng.integers(3, 300, n) for n in (7, 12, 5)]
    eos = int(_hf_generate(torch_model, rows, eos=-1)[0][4])  # the first row stops mid-way
    ref = _hf_generate(torch_model, rows, eos=eos)
    dec = Decoder(model, batch_size=4, max_new_tokens=MAX_NEW, eos_ids=(eos,), pad_id=0, buckets=(16,))
    ours = dec.generate([Prompt(r) for r in rows])
    for i, (o, r) in enumerate(zip(ours, ref)):
        assert o.tokens.tolist() == r.tolist(), f"row {i}: ours {o.tokens.tolist()} HF {r.tolist()}"
    assert ours[0].finished and len(ours[0].tokens) <= 5


def test_pixels_are_refused(pair):
    _, model = pair
    dec = Decoder(model, batch_size=1, max_new_tokens=2, eos_ids=(2,), pad_id=0)
    with pytest.raises(ValueError, match="no vision tower"):
        dec.submit([Prompt(np.arange(3, 9), {"pixel_values": np.zeros((4, 8), np.float32)})])
