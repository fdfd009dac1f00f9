"""A GGUF file's vocabulary as a transformers fast tokenizer (tokenizer.json), by the kind
`tokenizer.ggml.model` names:

- `gpt2`: byte-level BPE with the file's merges and the pre-tokenizer `tokenizer.ggml.pre` names;
- `llama` (SentencePiece BPE) for Gemma: tokens in score order, spaces as `▁`, byte fallback,
  merges implied by the vocabulary (Gemma's GGUF files carry none).

Control tokens become special tokens, user-defined ones plain added tokens (matched whole, as
llama.cpp does); BOS/EOS are added as `add_bos_token`/`add_eos_token` say; the chat template is
the file's, else the architecture's default.
"""

from __future__ import annotations

from collections.abc import Collection

from gguf import TokenType
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)
from transformers import PreTrainedTokenizerFast

from rmpl_jax.models.hf.gguf_metadata import Metadata

T = "tokenizer.ggml."

# Text splits before byte-level BPE, by `tokenizer.ggml.pre` (llama.cpp's pre-tokenizer types).
_GPT2 = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS = {
    "default": lambda: _GPT2,
    "gpt2": lambda: _GPT2,
    "smollm": lambda: pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), _GPT2]),
    "llama-bpe": lambda: pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    ),
}

# `tokenizer.*` keys the SentencePiece path reads or may safely ignore (ids llama.cpp uses for
# stopping or infilling only); any other key is refused, as it may change tokenization.
SENTENCEPIECE_KEYS = {
    "chat_template",
    *(
        "ggml." + k
        for k in (
            "model",
            "pre",
            "tokens",
            "scores",
            "token_type",
            "bos_token_id",
            "eos_token_id",
            "unknown_token_id",
            "padding_token_id",
            "mask_token_id",
            "add_bos_token",
            "add_eos_token",
            "add_sep_token",
            "add_space_prefix",
            "eot_token_id",
            "eom_token_id",
            "seperator_token_id",
            "fim_pre_token_id",
            "fim_suf_token_id",
            "fim_mid_token_id",
            "fim_pad_token_id",
            "fim_rep_token_id",
            "fim_sep_token_id",
        )
    ),
}


def _token(meta: Metadata, tokens: list[str], key: str) -> str | None:
    index = meta.get(T + key, None)
    return tokens[int(index)] if index is not None else None


def _added_tokens(core: Tokenizer, tokens: list[str], types: list[int], skip: Collection[str] = ()) -> None:
    """Control tokens as special added tokens, user-defined ones as plain added tokens: both are
    matched whole in the raw text (not normalized) before the model sees the rest."""
    core.add_special_tokens(
        [AddedToken(tok, normalized=False, special=True) for tok, k in zip(tokens, types) if k == TokenType.CONTROL]
    )
    core.add_tokens(
        [
            AddedToken(tok, normalized=False, special=False)
            for tok, k in zip(tokens, types)
            if k == TokenType.USER_DEFINED and tok not in skip
        ]
    )


def _post_processor(bos: str | None, eos: str | None, vocab: dict[str, int]) -> processors.TemplateProcessing:
    """BOS before / EOS after each sequence, where given (type id 1 for a pair's second)."""

    def sequence(part: str, type_id: int) -> list[str]:
        pieces = [*([bos] if bos else []), f"${part}", *([eos] if eos else [])]
        return [f"{p}:{type_id}" for p in pieces]

    return processors.TemplateProcessing(
        single=sequence("A", 0),
        pair=sequence("A", 0) + sequence("B", 1),
        special_tokens=[(t, vocab[t]) for t in dict.fromkeys(x for x in (bos, eos) if x is not None)],
    )


def _wrap(meta: Metadata, core: Tokenizer, tokens: list[str], default_template: str | None) -> PreTrainedTokenizerFast:
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=_token(meta, tokens, "bos_token_id"),
        eos_token=_token(meta, tokens, "eos_token_id"),
        unk_token=_token(meta, tokens, "unknown_token_id"),
        pad_token=_token(meta, tokens, "padding_token_id"),
        clean_up_tokenization_spaces=False,
    )
    template = meta.get("tokenizer.chat_template", default_template)
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def byte_level_tokenizer(meta: Metadata, default_template: str | None = None) -> PreTrainedTokenizerFast:
    """The GGUF byte-level BPE vocabulary as a transformers fast tokenizer: merges and
    pre-tokenizer as llama.cpp uses them, control tokens special, user-defined ones added,
    BOS prepended when `add_bos_token` says so, and the file's chat template."""
    kind = meta.get(T + "model")
    if kind != "gpt2":
        raise meta.error(T + "model", f"{kind!r} is not supported here (only 'gpt2', byte-level BPE)")
    pre = meta.get(T + "pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise meta.error(T + "pre", f"{pre!r} is not supported ({sorted(PRE_TOKENIZERS)})")
    tokens = list(meta.get(T + "tokens"))
    types = list(meta.get(T + "token_type", [int(TokenType.NORMAL)] * len(tokens)))
    merges = [tuple(m.split(" ", 1)) for m in meta.get(T + "merges")]
    core = Tokenizer(models.BPE(vocab={tok: i for i, tok in enumerate(tokens)}, merges=merges, fuse_unk=False))
    core.pre_tokenizer = PRE_TOKENIZERS[pre]()
    core.decoder = decoders.ByteLevel()
    _added_tokens(core, tokens, types)
    bos = _token(meta, tokens, "bos_token_id")
    if meta.get(T + "add_bos_token", False) and bos is not None:
        core.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokens.index(bos))]
        )
    else:
        core.post_processor = processors.ByteLevel(trim_offsets=False)
    return _wrap(meta, core, tokens, default_template)


def implied_merges(tokens: list[str]) -> list[tuple[str, str]]:
    """BPE merges of a vocabulary listed best first: every split of a token into two tokens,
    ranked by the merged token's position (Gemma's piece scores fall with it, but its special
    and byte pieces carry flat placeholder scores, so the position is the order to trust), a
    longer left part first. The same merges transformers derives for a GGUF Gemma vocabulary."""
    index = {tok: i for i, tok in enumerate(tokens)}
    found = []
    for tok, rank in index.items():
        for cut in range(len(tok) - 1, 0, -1):  # longer left part first
            left, right = tok[:cut], tok[cut:]
            if left in index and right in index:
                found.append((rank, len(tok) - cut, left, right))
    found.sort(key=lambda m: (m[0], m[1]))
    return [(left, right) for _, _, left, right in found]


def gemma_tokenizer(meta: Metadata, default_template: str | None = None) -> PreTrainedTokenizerFast:
    """Gemma's SentencePiece-BPE vocabulary (`tokenizer.ggml.model` = 'llama') as a fast
    tokenizer: spaces -> `▁` with no prefix space (llama.cpp writes add_space_prefix false for
    Gemma), BPE over the implied merges with byte fallback (`<0xNN>` pieces), `<unk>` for the rest."""
    meta.check_known("tokenizer.", SENTENCEPIECE_KEYS)
    kind = meta.get(T + "model")
    if kind != "llama":
        raise meta.error(T + "model", f"{kind!r} is not supported for this architecture (only 'llama', SentencePiece)")
    if meta.get(T + "pre", "default") != "default":
        raise meta.error(T + "pre", f"{meta.get(T + 'pre')!r} is not supported with a SentencePiece vocabulary")
    for key in ("add_space_prefix", "add_sep_token"):  # Gemma's are false; a prefix space would need Metaspace
        if meta.get(T + key, False):
            raise meta.error(T + key, "true is not supported for a Gemma SentencePiece vocabulary")
    stored = list(meta.get(T + "tokens"))
    types = list(meta.get(T + "token_type"))
    # Whitespace-run pieces are stored with real spaces ("  "), but the normalizer turns every
    # space into `▁` before the model looks pieces up: spell them `▁▁` so they stay reachable.
    tokens = [t.replace(" ", "\u2581") if t and not t.strip() else t for t in stored]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    unk = _token(meta, tokens, "unknown_token_id")
    core = Tokenizer(
        models.BPE(vocab=vocab, merges=implied_merges(tokens), unk_token=unk, fuse_unk=True, byte_fallback=True)
    )
    core.normalizer = normalizers.Replace(" ", "\u2581")
    core.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    _added_tokens(core, tokens, types, skip={t for t, s in zip(tokens, stored) if t != s})
    bos, eos = _token(meta, tokens, "bos_token_id"), _token(meta, tokens, "eos_token_id")
    core.post_processor = _post_processor(
        bos if meta.get(T + "add_bos_token", True) else None,  # llama.cpp's default for SentencePiece: add BOS
        eos if meta.get(T + "add_eos_token", False) else None,
        vocab,
    )
    tokenizer = _wrap(meta, core, tokens, default_template)
    mask = _token(meta, tokens, "mask_token_id") or ("<mask>" if "<mask>" in vocab else None)
    if mask is not None:  # Gemma's tokenizer names `<mask>` its mask token even where the file does not
        tokenizer.mask_token = mask
    return tokenizer


TOKENIZERS = {"gpt2": byte_level_tokenizer, "llama": gemma_tokenizer}


def build_tokenizer(meta: Metadata, kinds: tuple[str, ...], default_template: str | None) -> PreTrainedTokenizerFast:
    """The tokenizer of a file whose architecture comes with `kinds` of `tokenizer.ggml.model`."""
    kind = meta.get(T + "model")
    if kind not in kinds:
        raise meta.error(T + "model", f"{kind!r} is not supported for this architecture ({list(kinds)})")
    return TOKENIZERS[kind](meta, default_template)
