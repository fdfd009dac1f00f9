"""Tiny random LLaVA checkpoints for the by-hand checks in docs/families.md ("LLaVA") (torch CPU).

    python benchmarks/llava_tiny.py run-dir OUT      # a LLaVA-1.5-shaped directory a run can train
    python benchmarks/llava_tiny.py parity ROOT      # tools/parity.py on configs the tests never use

`run-dir` learns a 1,024-token byte-level BPE tokenizer (with `<s>`, `</s>`, `<image>`) from
rendered synthetic examples, so prompts fit the configs' default length buckets, and saves a
random `LlavaForConditionalGeneration` (CLIP tower: 3 blocks, 56-pixel photos, 16 image tokens;
Llama LM: hidden 128, 2 layers, GQA 4/2) with transformers' `save_pretrained`.
`parity` builds three checkpoints unlike every test variant and prints one line per
(checkpoint, photos) from `tools/parity.py`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rmpl_jax.data.synthetic import generate_split  # noqa: E402
from rmpl_jax.m2e2 import render  # noqa: E402
from tests.testing.hf_tiny_llava import make_tiny_llava, tiny_llava_tokenizer  # noqa: E402

LLAMA3_ROPE = dict(
    rope_type="llama3",
    rope_theta=500000.0,
    factor=8.0,
    low_freq_factor=1.0,
    high_freq_factor=4.0,
    original_max_position_embeddings=16,
)
# Unlike every variant of tests/testing/hf_tiny_llava.py: head counts, tied head, photo side,
# patch, feature layers, rotary, projector activation.
UNSEEN = {
    "mqa_img42_layer1": dict(
        text=dict(hidden_size=96, num_attention_heads=6, num_key_value_heads=1, num_hidden_layers=3),
        vision=dict(hidden_size=48, num_attention_heads=8, image_size=42, patch_size=14, num_hidden_layers=4),
        vision_feature_layer=1,
    ),
    "tied_gqa_img32_full": dict(
        text=dict(num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=True),
        vision=dict(image_size=32, patch_size=8, num_hidden_layers=4, hidden_act="gelu", num_attention_heads=2),
        vision_feature_layer=[-1, -4],
        vision_feature_select_strategy="full",
    ),
    "llama3rope_img56_layer-3": dict(
        text=dict(rope_parameters=LLAMA3_ROPE),
        vision=dict(image_size=56, patch_size=14, num_hidden_layers=5),
        vision_feature_layer=-3,
        projector_hidden_act="gelu_pytorch_tanh",
    ),
}


def run_dir(out: pathlib.Path) -> None:
    split = generate_split("tok", 60, out.parent / f"{out.name}_tokenizer_photos", seed=5)
    texts = []
    for s in split.sentences:
        for task in ("text_ee", "text_mention", "text_argument"):
            texts += [ex.prompt + "\n" + ex.target for ex in render.render(task, s)]
    for item in split.images[:100]:
        texts += [ex.prompt + "\n" + ex.target for ex in render.render("image_mention", item)]
    specials = ["<unk>", "<s>", "</s>", "<image>"]
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<unk>",
        additional_special_tokens=["<image>"],
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    config = transformers.LlavaConfig(
        vision_config=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=56,
            patch_size=14,
            projection_dim=32,
            hidden_act="quick_gelu",
        ),
        text_config=dict(
            model_type="llama",
            vocab_size=len(tok),
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            rms_norm_eps=1e-5,
            bos_token_id=ids["<s>"],
            eos_token_id=ids["</s>"],
            pad_token_id=ids["<unk>"],
        ),
        image_token_index=ids["<image>"],
    )
    torch.manual_seed(0)
    transformers.LlavaForConditionalGeneration(config).save_pretrained(out)
    tok.save_pretrained(out)
    print(json.dumps({"dir": str(out), "vocab": len(tok), "image_token_id": ids["<image>"]}))


def parity(root: pathlib.Path) -> None:
    for name, overrides in UNSEEN.items():
        hf_dir, _ = make_tiny_llava(root, "default", seed=7, name=name, **overrides)
        if name.startswith("tied"):  # chat prompts through the processor for this one
            tiny_llava_tokenizer().save_pretrained(str(hf_dir))
        for images in (0, 1, 3):
            cmd = [sys.executable, str(REPO / "tools" / "parity.py"), "--hf-dir", str(hf_dir), "--images", str(images)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            result = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
            keys = ("max_abs_logit_diff", "argmax_agreement", "max_abs_logit", "tokenizer", "input_ids_shape")
            print(json.dumps({"checkpoint": name, "images": images, **{k: result[k] for k in keys}}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["run-dir", "parity"])
    p.add_argument("path", type=pathlib.Path)
    args = p.parse_args()
    run_dir(args.path) if args.what == "run-dir" else parity(args.path)


if __name__ == "__main__":
    main()
