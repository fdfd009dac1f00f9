"""Run paths given as `gs://` URLs, on a bucket served from a local folder (tests/testing/
fake_gcs.py; no network): a demo training run keeps its config, checkpoints, metrics,
TensorBoard events, curves, run card and export in the bucket and resumes from it; `init_from`
and predict's `checkpoint` resolve there; data files and photos are read from it; predict
writes its predictions, scores and page to it. Nothing lands in the working directory (a bug
writing `gs://...` as a local path would make a `gs:` folder there)."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from rmpl_jax.io.errors import ConfigError
from tests.testing.fake_gcs import fake_gcs
from tests.testing.m2e2_files import write_m2e2_annotations
from tests.train.test_train_loop import small_config

WORKDIR = "gs://bucket/run"


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """The local folder behind `gs://` (`gs://bucket/x` is `<it>/bucket/x`), for the module;
    the working directory and the temporary folder are empty folders of their own."""
    base = tmp_path_factory.mktemp("remote")
    (base / "cwd").mkdir()
    (base / "tmp").mkdir()
    with pytest.MonkeyPatch.context() as mp, fake_gcs(base / "gcs", mp) as root:
        mp.chdir(base / "cwd")
        mp.setattr("tempfile.tempdir", str(base / "tmp"))
        yield root
        assert os.listdir(base / "cwd") == []  # nothing written as a relative local path


@pytest.fixture(scope="module")
def trained(bucket):
    """A two-stage demo run (2 steps each) with its workdir in the bucket; the local folder
    behind that workdir."""
    from rmpl_jax.modes import train

    train.run(small_config(stage1_steps=2), WORKDIR)
    return bucket / "bucket" / "run"


def _steps(directory) -> list[int]:
    return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


def test_demo_run_keeps_its_outputs_in_the_bucket_and_resumes(trained, bucket, capsys):
    from rmpl_jax.io.run_config import find_run_config
    from rmpl_jax.modes import train
    from rmpl_jax.train.checkpoint_dirs import find_checkpoints
    from rmpl_jax.train.metrics_log import read_metrics

    run = trained
    assert json.loads((run / "config.json").read_text())["mode"] == "train"
    assert _steps(run / "stage1" / "checkpoints") == [2] == _steps(run / "stage2" / "checkpoints")
    assert {"config.json", "model.safetensors", "tokenizer.json", "rmpl_run_config.json"} <= set(
        os.listdir(run / "export")
    )
    for stage in ("stage1", "stage2"):
        assert [line["step"] for line in read_metrics(f"{WORKDIR}/{stage}")] == [1, 2]
        assert any(n.startswith("events.out.tfevents.") for n in os.listdir(run / stage))
    assert (run / "curves.png").stat().st_size > 0
    card = (run / "run.md").read_text()
    assert "| stage1 | 0 -> 2 (2) | 2 |" in card and f"{WORKDIR}/stage1/metrics.jsonl" in card
    # What the model reads as files (demo model, synthetic photos) is on local disk, and the
    # export's and the metrics' staging folders are gone.
    tmp = os.listdir(bucket.parent / "tmp")
    assert "rmpl_jax" in tmp and not [n for n in tmp if n.startswith(("rmpl_export_", "rmpl_metrics_"))]

    # init_from / predict's checkpoint resolve in the bucket: a run directory is its last stage.
    assert find_checkpoints(WORKDIR, "init_from") == f"{WORKDIR}/stage2/checkpoints"
    assert find_checkpoints(f"{WORKDIR}/stage1", "init_from") == f"{WORKDIR}/stage1/checkpoints"
    assert find_run_config(f"{WORKDIR}/stage2/checkpoints")["stages"] == ["stage1", "stage2"]

    capsys.readouterr()
    train.run(small_config(stage1_steps=4), WORKDIR)
    out = capsys.readouterr().out
    assert "resumed stage1 from step 2" in out and "resumed stage2 from step 2" in out
    assert _steps(run / "stage1" / "checkpoints")[-1] == 4
    assert [line["step"] for line in read_metrics(f"{WORKDIR}/stage1")] == [1, 2, 3, 4]  # appended
    assert "| stage1 | 2 -> 4 (2) | 4 |" in (run / "run.md").read_text()


def test_path_helpers_on_urls():
    from rmpl_jax.io import paths

    assert paths.parent("gs://bucket/run/stage1/") == "gs://bucket/run" and paths.parent("gs://bucket") is None
    assert paths.parent("/") is None and paths.absolute("gs://bucket/x") == "gs://bucket/x"
    assert paths.local_dir_for("w") == "w" and "gs%3A%2F%2Fbucket" in paths.local_dir_for("gs://bucket/run")


def test_a_remote_metrics_log_uploads_on_sync_and_appends_on_resume(bucket):
    import numpy as np

    from rmpl_jax.train.metrics_log import MetricsLog, read_metrics

    stage = "gs://bucket/logs/stage1"
    log = MetricsLog(stage)
    log.write(1, {"loss": np.float32(2.0)})
    assert read_metrics(stage) == []  # not uploaded yet: objects are written whole
    log.sync()
    assert [line["step"] for line in read_metrics(stage)] == [1]
    log.write(2, {"loss": np.float32(1.0)})
    log.close()
    resumed = MetricsLog(stage)
    resumed.write(3, {"loss": np.float32(0.5)})
    resumed.close()
    assert [line["step"] for line in read_metrics(stage)] == [1, 2, 3]
    assert any(n.startswith("events.out.tfevents.") for n in os.listdir(bucket / "bucket" / "logs" / "stage1"))


def _photo(path, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path)


def test_data_files_and_photos_are_read_from_the_bucket(bucket):
    from rmpl_jax.data.detections import read_detections
    from rmpl_jax.data.featurize import load_image
    from rmpl_jax.data.images import check_photos
    from rmpl_jax.data.mnre import read_mnre
    from rmpl_jax.io.read_report import DataError
    from rmpl_jax.io.skips import SkipRegistry

    data = bucket / "bucket" / "data"
    _photo(data / "mnre" / "images" / "a.jpg")
    record = {
        "token": ["Ann", "lives", "in", "Rome"],
        "h": {"name": "Ann", "pos": [0, 1]},
        "t": {"name": "Rome", "pos": [3, 4]},
        "relation": "/per/loc/place_of_residence",
    }
    lines = [repr(dict(record, img_id="a.jpg")), repr(dict(record, img_id="b.jpg"))]
    (data / "mnre" / "train.txt").write_text("\n".join(lines) + "\n")
    records, report = read_mnre("gs://bucket/data/mnre/train.txt", images_dir="gs://bucket/data/mnre/images")
    assert [r.image for r in records] == ["gs://bucket/data/mnre/images/a.jpg", None]
    assert report.counts["images_missing"] == 1 and records[0].record_id == "train:1"

    assert check_photos([records[0].image], lenient=False, skips=SkipRegistry(), what="mnre") == {
        records[0].image: (40, 30)
    }
    assert load_image(records[0].image, 28).size == (28, 28)
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(DataError, match="gs://bucket/data/broken.jpg: unreadable image"):
        check_photos(["gs://bucket/data/broken.jpg"], lenient=False, skips=SkipRegistry(), what="mnre")

    (data / "det.json").write_text(json.dumps({"a.jpg": [{"box": [1, 2, 30, 20], "label": "person", "score": 0.9}]}))
    detections, report = read_detections("gs://bucket/data/det.json")
    assert detections["a"][0].label == "person" and report.counts["detections"] == 1
    with pytest.raises(FileNotFoundError):  # as for a local path (validate names the key first)
        read_detections("gs://bucket/data/missing.json")


def test_validate_checks_bucket_paths_and_keeps_model_dirs_local(bucket):
    from configs import stage1
    from rmpl_jax.modes.validate import validate_train

    c = stage1.get_config()
    c.data.ace_path = "gs://bucket/nothing/train.json"
    with pytest.raises(ConfigError, match=r"--config.data.ace_path=gs://bucket/nothing/train.json: no such file"):
        validate_train(c)
    c.data.ace_path = ""
    c.model.hf_dir = "gs://bucket/models/qwen"
    with pytest.raises(ConfigError, match=r"--config.model.hf_dir=gs://bucket/models/qwen: .* must be a local path"):
        validate_train(c)
    c.model.hf_dir = ""
    # A scheme whose client library is not installed is one line naming the flag.
    with pytest.raises(ConfigError, match=r"--workdir=s3://bucket/run: cannot reach it"):
        validate_train(c, "s3://bucket/run")


def test_predict_reads_and_writes_the_bucket(trained, bucket):
    from configs import predict_m2e2
    from rmpl_jax.data.synthetic import generate_split
    from rmpl_jax.m2e2.predictions import read_predictions
    from rmpl_jax.modes import predict as predict_mode

    # An M2E2 directory in the bucket: a small synthetic split in M2E2's layout, its photos.
    local = bucket / "bucket" / "m2e2"
    split = generate_split("pred", 2, bucket.parent / "tmp" / "photos", seed=5, images_per_doc=(1, 1))
    write_m2e2_annotations(split, local, scratch=local)
    for item in split.images:
        _photo(local / "images" / f"{item.image_id}.jpg")

    config = predict_m2e2.get_config()
    config.checkpoint = WORKDIR  # the run's last stage, settings from its config.json
    config.m2e2_dir, config.images_dir = "gs://bucket/m2e2", "gs://bucket/m2e2/images"
    config.limit = 2
    config.decode.update(batch_size=4, max_new_tokens=16, buckets=(768,))
    metrics = predict_mode.run(config, "gs://bucket/predict")
    out = bucket / "bucket" / "predict"
    assert {"predictions.jsonl", "metrics.json", "report.html"} <= set(os.listdir(out))
    back = read_predictions("gs://bucket/predict/predictions.jsonl")
    assert len(back.text) == 2 and back.images  # the sentences' photos were decoded from the bucket
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["predict"]["checkpoint"] == f"{WORKDIR}/stage2/checkpoints"
    assert saved["predict"]["missing_images"] == 0 and metrics["text_event"] == saved["text_event"]
