"""The M2E2 text run (`configs/m2e2_text.py`) at CI size: a tiny Llama with LoRA trains a few
steps on the sentences of a split's train documents, then predicts and strictly scores the
test documents; no sentence of a test document reaches training, and the held-out gold is
exactly the test documents' text. (The measured SmolLM2 run: benchmarks/m2e2_text.md.)"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from configs import m2e2_text, m2e2_text_gemma3
from rmpl_jax.data.curriculum import real_sources
from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.io.errors import ConfigError
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2.predictions import read_predictions
from rmpl_jax.m2e2.records import doc_id_of
from rmpl_jax.modes import train
from rmpl_jax.modes.validate import validate_train
from rmpl_jax.train.metrics_log import read_metrics
from tests.testing.hf_tiny_llama import tiny_llama_chat_dir

TRAIN_DOCS = ("VOA_EN_NW_2009.12.09.416313", "VOA_EN_NW_2009.12.13.416444")


@pytest.fixture
def small_split(tmp_path, shared_data_dir):
    """Two real train documents and one test document, as a split file."""
    corpus = read_m2e2(str(shared_data_dir / "m2e2"))
    full = json.loads((shared_data_dir / "splits" / "m2e2_text_docs.json").read_text())
    # the smallest test document with a text event keeps the decode short
    with_events = {doc_id_of(k) for k, s in corpus.sentences.items() if s.events}
    sizes = {d: sum(1 for k in corpus.sentences if doc_id_of(k) == d) for d in full["test"] if d in with_events}
    test_doc = min(sizes, key=lambda d: (sizes[d], d))
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": list(TRAIN_DOCS), "dev": full["dev"][:1], "test": [test_doc]}))
    return path, corpus, test_doc


def test_few_steps_on_train_documents_then_the_test_documents_scored(tmp_path, small_split, capsys):
    split, corpus, test_doc = small_split
    c = m2e2_text.get_config()
    c.model.hf_dir = str(tiny_llama_chat_dir(tmp_path / "base"))
    c.model.lora_rank, c.model.lora_alpha = 4, 8.0
    c.data.m2e2.split = str(split)
    c.data.buckets = (1024, 2048)  # the tiny tokenizer is byte-level
    c.data.batch_size = 2
    c.stage2.steps = 2
    c.decode.batch_size, c.decode.max_new_tokens = 8, 16

    sources = real_sources(c.data, SkipRegistry())
    assert {doc_id_of(s.sentence_id) for s in sources.sentences} == set(TRAIN_DOCS)

    metrics = train.run(c, str(tmp_path / "W"))
    out = capsys.readouterr().out
    assert "stage2 loss: first" in out
    logged = read_metrics(str(tmp_path / "W" / "stage2"))
    assert [m["step"] for m in logged] == [1, 2] and all(m["input_tokens"] > m["tokens"] > 0 for m in logged)
    test_sentences = {k: s for k, s in corpus.sentences.items() if doc_id_of(k) == test_doc}
    assert metrics["text_event"]["gold"] == sum(len(s.events) for s in test_sentences.values()) > 0
    assert metrics["text_argument"]["gold"] == sum(len(e.arguments) for s in test_sentences.values() for e in s.events)
    assert metrics["image_event"]["gold"] == 0  # the split is of text
    assert metrics["decode"]["parse_failures"]["text_mention"] == 0
    predicted = read_predictions(str(tmp_path / "W" / "heldout" / "predictions.jsonl"))
    assert {p.sentence_id for p in predicted.text} == set(test_sentences)
    card = (tmp_path / "W" / "run.md").read_text()
    assert f"{len(test_sentences)} sentences, 0 photos (M2E2 text, 'test' documents)" in card


def test_training_and_scoring_the_same_part_is_refused(tmp_path, small_split):
    c = m2e2_text.get_config()
    c.model.hf_dir = str(tiny_llama_chat_dir(tmp_path / "base"))
    c.data.m2e2.split = str(small_split[0])
    c.data.m2e2.heldout_part = "train"
    with pytest.raises(ConfigError, match="data.m2e2.heldout_part='train' is the part trained on"):
        validate_train(c)
    c.data.m2e2.heldout_part = "validation"
    with pytest.raises(ConfigError, match="parts are"):
        validate_train(c)


def test_the_gemma_config_is_the_text_config_with_gemma_three_passes_and_likelier_nones():
    def flat(config, prefix=""):
        out = {}
        for key, value in config.items():
            out.update(flat(value, f"{prefix}{key}.") if hasattr(value, "items") else {f"{prefix}{key}": value})
        return out

    text, gemma = flat(m2e2_text.get_config()), flat(m2e2_text_gemma3.get_config())
    changed = {k: (text[k], gemma[k]) for k in text if text[k] != gemma[k]}
    assert changed == {
        "model.hf_dir": ("smollm2-hf", "gemma3-270m-hf"),
        "stage2.steps": (290, 720),
        "checkpoint.every": (100, 120),
        "decode.no_event_penalty": (0.0, -1.0),
    }
