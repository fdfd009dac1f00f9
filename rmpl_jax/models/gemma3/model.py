"""Gemma 3 with vision (transformers' `Gemma3ForConditionalGeneration`) in Flax NNX: the SigLIP
tower (`gemma3/vision.py`), the pooling projector (`gemma3/projector.py`) and the Gemma 3
language model — the shared `models.decoder.DecoderLM` with `text_model.decoder_dims`.

Forward inputs: input_ids [B, T] in which every photo is a run of `tokens_per_image` image
tokens (the processor expands them); attention_mask [B, T] (left or right padding);
position_ids [B, T] (optional: real tokens before each, image tokens counted); pixel_values
[n_images, C, S, S] (the photos in the order their runs appear, row-major over the batch) or
image_features [>= n_image_tokens, D] already projected. Image features replace the image
tokens' embeddings (unscaled, as HF), and the tokens of one photo attend to each other both
ways (`block_ids`); everything else is causal, sliding-window layers included.

Parameter paths: the decoder's (`embed_tokens`, `layers/...`, `norm`), then `vision_tower/...`
and `multi_modal_projector/{mm_soft_emb_norm,mm_input_projection}`; the decoder's default LoRA
targets never match the tower or the projector.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rmpl_jax.models.decoder import DecoderLM
from rmpl_jax.models.gemma3.multimodal_config import Gemma3Config
from rmpl_jax.models.gemma3.projector import MultiModalProjector
from rmpl_jax.models.gemma3.text_model import Gemma3RotaryMixin, decoder_dims
from rmpl_jax.models.gemma3.vision import SiglipVisionTower
from rmpl_jax.models.layers import KVCache
from rmpl_jax.models.llama.model import text_positions
from rmpl_jax.models.segments import embed_photos, run_ids


class Gemma3(Gemma3RotaryMixin, DecoderLM):
    """Gemma 3 for conditional generation (SigLIP tower + projector + Gemma 3 LM)."""

    def __init__(self, config: Gemma3Config, *, rngs: nnx.Rngs):
        self.config = config
        text = config.text
        self.init_decoder(decoder_dims(text), text.vocab_size, text.tie_word_embeddings, rngs)
        kw = dict(dtype=text.compute_dtype, param_dtype=text.weight_dtype)
        self.vision_tower = SiglipVisionTower(config.vision, implementation=text.attention_impl, rngs=rngs, **kw)
        self.multi_modal_projector = MultiModalProjector(
            config.vision, text.hidden_size, config.tokens_per_image, rngs=rngs, **kw
        )

    @property
    def text_config(self):
        return self.config.text

    # -- images ---------------------------------------------------------------------------------
    def image_features(self, pixel_values) -> jax.Array:
        """Projected, pooled tower features [n_images * tokens_per_image, D], photos in order."""
        out = self.multi_modal_projector(self.vision_tower(pixel_values))
        return out.reshape(-1, out.shape[-1])

    def _image_tokens(self, input_ids, attention_mask) -> jax.Array:
        is_image = input_ids == self.config.image_token_id
        return is_image if attention_mask is None else is_image & attention_mask.astype(bool)

    def embed(
        self, input_ids, *, pixel_values=None, image_features=None, attention_mask=None, packed=False
    ) -> jax.Array:
        """Token embeddings [B, T, D] with image features over the image tokens (row-major;
        per-row slots when `packed`, `models/segments.py`)."""
        # The image token may lie past the embedding table (HF then looks up id 0 for it).
        ids = jnp.where(input_ids >= self.config.vocab_size, 0, input_ids)
        x = self.embed_tokens(ids)
        return embed_photos(
            x,
            input_ids,
            attention_mask,
            pixel_values,
            image_features,
            packed,
            encode=self.image_features,
            image_token_id=self.config.image_token_id,
            tokens_per_image=self.config.tokens_per_image,
        )

    # -- trunk ----------------------------------------------------------------------------------
    def hidden_states(
        self,
        input_ids,
        *,
        attention_mask=None,
        position_ids=None,
        pixel_values=None,
        image_features=None,
        right_padded=False,
        segment_ids=None,
    ) -> jax.Array:
        """Final-norm hidden states [B, T, D]; `right_padded` and `segment_ids` (packed rows,
        photos in per-row slots) as `DecoderLM.hidden_from_embeds`."""
        x = self.embed(
            input_ids,
            pixel_values=pixel_values,
            image_features=image_features,
            attention_mask=attention_mask,
            packed=segment_ids is not None,
        )
        if position_ids is None:
            b, t = x.shape[:2]
            position_ids = text_positions(attention_mask, b, t, segment_ids)
        return self.hidden_from_embeds(
            x,
            position_ids=position_ids,
            attention_mask=attention_mask,
            right_padded=right_padded,
            segment_ids=segment_ids,
            block_ids=run_ids(self._image_tokens(input_ids, attention_mask)),
        )

    def prefill(self, input_ids, *, attention_mask, position_ids, cache: KVCache, image_features=None):
        """Runs a left-padded prompt batch [B, P], fills cache slots 0..P-1 and returns
        (float32 logits [B, V] of the last position, cache); position_ids [B, P]."""
        x = self.embed(input_ids, image_features=image_features, attention_mask=attention_mask)
        return self.prefill_embeds(
            x,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            block_ids=run_ids(self._image_tokens(input_ids, attention_mask)),
        )

    def __call__(self, input_ids, *, attention_mask=None, position_ids=None, pixel_values=None) -> jax.Array:
        """Logits [B, T, V] in float32."""
        h = self.hidden_states(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, pixel_values=pixel_values
        )
        return self.logits_from_hidden(h)
