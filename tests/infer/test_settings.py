"""One decode-settings block for the training run's held-out decode and for predict: its
defaults in one place, read into `DecodeSettings`, bad values and renamed keys named."""

from __future__ import annotations

import dataclasses
import json

import pytest

from configs import m2e2_text, predict_m2e2, stage1, stage2
from rmpl_jax.infer.settings import (
    DecodeSettings,
    check_not_renamed,
    decode_block,
    renamed_flags,
    resolve_pipeline,
)
from rmpl_jax.io.errors import ConfigError


def test_both_configs_take_the_same_defaults():
    defaults = dataclasses.asdict(DecodeSettings())
    assert decode_block().to_dict() == defaults
    assert DecodeSettings.from_config(predict_m2e2.get_config().decode) == DecodeSettings()
    for config in (stage1.get_config(), stage2.get_config()):  # the held-out decode keeps its budget of 96
        assert DecodeSettings.from_config(config.decode) == DecodeSettings(max_new_tokens=96)
        check_not_renamed(config)
    assert set(stage1.get_config().eval) == {"heldout"}
    text = DecodeSettings.from_config(m2e2_text.get_config().decode)
    assert (text.batch_size, text.max_new_tokens, text.buckets[0]) == (32, 64, 64)


def test_from_config_reads_a_run_config_json():
    config = stage1.get_config()
    config.decode.buckets = (128, 256)
    back = json.loads(config.to_json_best_effort())["decode"]  # lists for tuples
    assert DecodeSettings.from_config(back) == DecodeSettings(max_new_tokens=96, buckets=(128, 256))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"batch_size": 0}, r"--config.decode.batch_size=0: must be an integer >= 1"),
        ({"max_new_tokens": 2.5}, r"--config.decode.max_new_tokens=2.5: must be an integer"),
        ({"buckets": (256, -1)}, r"--config.decode.buckets=\(256, -1\): give positive token lengths"),
        ({"pipeline": "pairs"}, r"--config.decode.pipeline='pairs': one of \('auto', 'joint', 'stage2'"),
        ({"pair_filter": "some"}, r"--config.decode.pair_filter='some': one of \('all', 'events'\)"),
        ({"temperature": -1.0}, r"--config.decode.temperature=-1.0: a number >= 0"),
        ({"no_event_penalty": float("nan")}, r"--config.decode.no_event_penalty=nan: a finite number"),
        ({"no_event_penalty": 1.0, "constrained": False}, r"needs constrained decoding \(--config.decode.constrained"),
        ({"max_new_token": 64}, r"--config.decode.max_new_token: not a decode setting"),
    ],
)
def test_bad_values_name_their_key(change, message):
    block = decode_block()
    values = {**block.to_dict(), **change}
    with pytest.raises(ConfigError, match=message):
        DecodeSettings.from_config(values)


def test_auto_pipeline():
    tasks = {"text_mention": 1.0, "multimedia": 0.0}
    assert resolve_pipeline("auto", ("stage1", "stage2"), tasks) == "stage2"
    assert resolve_pipeline("auto", ("stage1", "stage2"), {**tasks, "multimedia": 0.5}) == "multimedia"
    assert resolve_pipeline("auto", ("stage1",), {"text_ee": 1.0}) == "joint"
    assert resolve_pipeline("auto", (), None) == "stage2"
    assert resolve_pipeline("joint", ("stage1", "stage2"), tasks) == "joint"
    assert DecodeSettings().resolved(("stage1",), None).pipeline == "joint"


def test_renamed_keys_are_named():
    argv = ["main", "--config", "c.py", "--config.eval.max_new_tokens=64", "--config.pipeline", "joint"]
    assert renamed_flags(argv) == [
        "--config.eval.max_new_tokens is now --config.decode.max_new_tokens",
        "--config.pipeline is now --config.decode.pipeline",
    ]
    assert renamed_flags(["--config.eval.heldout=False", "--config.decode.batch_size=8"]) == []
    config = stage1.get_config()
    config.eval.no_event_penalty = 0.5  # a plain ConfigDict takes a new key silently
    with pytest.raises(ConfigError, match="--config.eval.no_event_penalty is now --config.decode.no_event_penalty"):
        check_not_renamed(config)
