"""Config validation before anything is built: each mistake is a ConfigError naming the
`--config.` key and the fix."""

import json

import pytest

from configs import predict_m2e2, stage1, stage2
from rmpl_jax.io.errors import ConfigError
from rmpl_jax.modes.validate import validate_predict, validate_train


def test_defaults_pass():
    assert validate_train(stage1.get_config()) is None


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(stages=("stage1", "stage3")), "--config.stages names 'stage3'"),
        (lambda c: c.stage1.update(tasks={"text_e": 1.0}), r"--config.stage1.tasks: unknown task\(s\) \['text_e'\]"),
        (lambda c: setattr(c.stage1, "tasks", {"text_ee": 0.0}), "at least one > 0"),
        (lambda c: c.stage1.update(steps=0), "--config.stage1.steps=0"),
        (lambda c: c.data.update(buckets=()), "--config.data.buckets"),
        (lambda c: c.data.update(prefetch=-1), r"--config.data.prefetch=-1: batches featurised ahead"),
        (lambda c: c.update(mesh_shape=(2, 1, 1)), r"--config.mesh_shape: .*needs 2 devices, 1 are available"),
        (lambda c: c.update(mesh_shape=(1, 1)), "--config.mesh_shape"),
        (lambda c: c.train.update(grad_accum=3), r"--config.data.batch_size=8: .*a multiple of 3"),
        (lambda c: c.data.update(ace_path="/no/such/ace.json"), r"--config.data.ace_path=/no/such/ace.json: no such"),
        (lambda c: c.data.update(mnre_images="/no/such/dir"), "--config.data.mnre_images=/no/such/dir"),
        (lambda c: c.model.update(hf_dir="/no/such/model"), "--config.model.hf_dir=/no/such/model: no config.json"),
        (lambda c: c.update(init_from="/no/such/run"), "--config.init_from=/no/such/run: no such directory"),
        (lambda c: c.decode.update(no_event_penalty=float("inf")), r"--config.decode.no_event_penalty=inf: a finite"),
        (lambda c: c.decode.update(pipeline="pairs"), r"--config.decode.pipeline='pairs': one of \('auto', 'joint'"),
        (lambda c: c.decode.update(pair_filter="some"), r"--config.decode.pair_filter='some': one of \('all', 'ev"),
        (lambda c: c.decode.update(max_new_tokens=0), r"--config.decode.max_new_tokens=0: must be an integer >= 1"),
        (lambda c: c.decode.update(buckets=()), r"--config.decode.buckets=\(\): give positive token lengths"),
        (lambda c: c.eval.update(max_new_tokens=64), "--config.eval.max_new_tokens is now --config.decode.max_new"),
        (lambda c: c.data.multimedia.update(same_doc_negatives=1.5), "same_doc_negatives=1.5: a share in"),
        (lambda c: c.data.multimedia.update(other_doc_negatives=-1), "other_doc_negatives=-1: photos per positive"),
    ],
)
def test_train_mistakes(edit, message):
    config = stage1.get_config()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        validate_train(config)


def test_stage2_alone_needs_init_from(tmp_path):
    config = stage2.get_config()
    with pytest.raises(ConfigError, match="set --config.init_from=W .* or --config.init_from=base"):
        validate_train(config)
    config.init_from = "base"
    assert validate_train(config) is None
    (tmp_path / "config.json").write_text(json.dumps({"mode": "train", "stages": ["stage1"]}))
    (tmp_path / "stage1" / "checkpoints" / "3").mkdir(parents=True)
    config.init_from = str(tmp_path)  # a run directory: its last stage's checkpoints
    assert validate_train(config) == str(tmp_path / "stage1" / "checkpoints")


def test_predict_mistakes(tmp_path):
    config = predict_m2e2.get_config()
    assert validate_predict(config) is None
    config.images_dir = str(tmp_path / "none")
    with pytest.raises(ConfigError, match="--config.images_dir=.*none: no such directory"):
        validate_predict(config)
    config.images_dir, config.decode.no_event_penalty, config.decode.constrained = "", 2.0, False
    with pytest.raises(ConfigError, match="--config.decode.no_event_penalty=2.0: needs constrained decoding"):
        validate_predict(config)
    config.decode.constrained, config.decode.pipeline = True, "pairs"
    with pytest.raises(ConfigError, match="--config.decode.pipeline='pairs': one of"):
        validate_predict(config)
    config.decode.pipeline, config.decode.pair_filter = "multimedia", "some"
    with pytest.raises(ConfigError, match="--config.decode.pair_filter='some': one of"):
        validate_predict(config)
    config.decode.pair_filter, config.decode.batch_size = "events", 0
    with pytest.raises(ConfigError, match="--config.decode.batch_size=0: must be an integer >= 1"):
        validate_predict(config)
    config.decode.batch_size, config.max_new_tokens = 16, 64  # the old spelling, set in Python
    with pytest.raises(ConfigError, match="--config.max_new_tokens is now --config.decode.max_new_tokens"):
        validate_predict(config)
    del config["max_new_tokens"]
    config.checkpoint = str(tmp_path)
    with pytest.raises(ConfigError, match="--config.checkpoint=.*it holds no checkpoints"):
        validate_predict(config)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("tasks", ("image_mention",), "tasks=.*candidates apply to"),
        ("min_iou", 0.0, "min_iou=0.0"),
        ("min_score", 1.5, "min_score=1.5"),
        ("max_per_image", -1, "max_per_image=-1"),
    ],
)
def test_candidate_settings_are_checked(key, value, message):
    config = stage1.get_config()
    config.data.candidates[key] = value
    with pytest.raises(ConfigError, match=rf"--config\.data\.candidates\.{message}"):
        validate_train(config)


def test_candidate_detections_path_is_checked(tmp_path):
    config = stage1.get_config()
    config.data.candidates.imsitu_detections = str(tmp_path / "absent.json")
    with pytest.raises(ConfigError, match="data.candidates.imsitu_detections=.*no such file"):
        validate_train(config)
