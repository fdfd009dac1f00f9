"""Llama checkpoints: the HF name table (`models.decoder.decoder_name_rules`), loading an HF
directory straight into target shardings, and exporting one transformers loads."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rmpl_jax.models.decoder import decoder_name_rules
from rmpl_jax.models.hf.names import NameRule
from rmpl_jax.models.hf.safetensors_io import export_state, load_state
from rmpl_jax.models.llama.config import LlamaConfig
from rmpl_jax.models.llama.model import Llama, abstract_model, decoder_dims, with_dtype

# HF tensors some checkpoints hold that are not parameters here.
_IGNORED = (r".*rotary_emb\.inv_freq",)


def name_rules(cfg: LlamaConfig) -> list[NameRule]:
    """HF names (model.layers.N..., model.embed_tokens, model.norm, lm_head) <-> our leaves."""
    return decoder_name_rules(decoder_dims(cfg), cfg.tie_word_embeddings)


def load_hf(hf_dir, dtype: str | None = None, shardings=None, *, strict: bool = True, report=None, **options) -> Llama:
    """Loads an HF Llama directory (config.json + safetensors), one tensor at a time.

    shardings: None, a mapping from parameter path to `jax.sharding.Sharding`, or a callable
    (path, variable) -> Sharding | None. strict=False skips unexpected tensors, listed in
    `report` (a `LoadReport`) if given.
    """
    cfg = with_dtype(LlamaConfig.from_dir(hf_dir), dtype, options)
    model = abstract_model(cfg)
    ignore = list(_IGNORED)
    if cfg.tie_word_embeddings:
        ignore.append(r"lm_head\.weight")  # some tied checkpoints still store the copy
    result = load_state(model, hf_dir, name_rules(cfg), ignore=ignore, shardings=shardings, strict=strict)
    if report is not None:
        report.loaded, report.skipped = result.loaded, result.skipped
    return model


def export_hf(model: Llama, out_dir, dtype: str | None = None, *, max_shard_bytes: int = 4 << 30):
    """Writes safetensors (LoRA merged, cast to `dtype` if given) and config.json."""
    cfg = model.config
    np_dtype = None if dtype is None else np.dtype(jnp.dtype(dtype))
    torch_dtype = str(np_dtype if np_dtype is not None else jnp.dtype(cfg.param_dtype))
    return export_state(
        model,
        out_dir,
        name_rules(cfg),
        cfg.to_hf(torch_dtype=torch_dtype),
        dtype=np_dtype,
        max_shard_bytes=max_shard_bytes,
    )
