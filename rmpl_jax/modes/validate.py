"""Config checks that run before anything is read, built or compiled, so a mistake costs
seconds and reads as one line naming the `--config.` key and the fix.

Unknown keys given on the command line are refused when the flags are parsed (`main.py`);
here: names inside settings (stages, task mixtures), the mesh against the devices, the
batch against the mesh and processes, paths, and where a stage starts from.

Data, photo and run paths may be URLs (`gs://bucket/x`, through etils.epath); a model
directory must be local (its safetensors are memory-mapped, its tokenizer read by path).
"""

from __future__ import annotations

import os

import jax

from rmpl_jax.infer.settings import BLOCK, DecodeSettings, check_not_renamed
from rmpl_jax.io import paths
from rmpl_jax.io.errors import ConfigError
from rmpl_jax.m2e2 import grammar
from rmpl_jax.m2e2.doc_split import PARTS
from rmpl_jax.m2e2.render import PROMPT_STYLES
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.checkpoint_dirs import find_checkpoints
from rmpl_jax.train.model_setup import batch_multiple, mesh_shape, model_options

FROM_BASE = "base"  # init_from value: start the first stage from the base model on purpose
STAGE_KEYS = ("tasks", "steps", "learning_rate", "warmup_steps")
TRAIN_FILES = ("ace_path", "imsitu_path", "mnre_path", "imsitu_mapping")
TRAIN_DIRS = ("imsitu_images", "mnre_images")
CANDIDATE_TASKS = ("visual_ee", "image_argument", "multimedia")  # the tasks that write boxes


def validate_train(config, workdir: str = "") -> str | None:
    """Checks a train config (and `workdir`, when given); returns the checkpoints directory
    `init_from` names (None when the first stage starts from the base model)."""
    if workdir:
        check_reachable(workdir, "--workdir")
    _check_stages(config)
    _check_mesh_and_batch(config)
    model_options(config.model, pretrained=bool(config.model.hf_dir))
    _check_paths(config.data, TRAIN_FILES, TRAIN_DIRS, prefix="data.")
    if "candidates" in config.data:
        check_candidates(config.data.candidates, "data.candidates.")
        _check_paths(config.data.candidates, ("imsitu_detections",), (), prefix="data.candidates.")
    if config.data.get("m2e2") and config.data.m2e2.use:
        _check_m2e2_block(config.data.m2e2)
    if config.model.hf_dir:
        _check_model_dir(config.model.hf_dir, "model.hf_dir")
    # A text-only model leaves the image tasks out (`train.model_setup.drop_image_tasks`) as soon as
    # the model directory is known (the demo's is written by the run), before any build.
    return _init_from(config)


def validate_predict(config, workdir: str = "") -> str | None:
    """Checks a predict config (and `workdir`, when given); returns the checkpoints directory
    `checkpoint` names (None when the model's own weights are used)."""
    if workdir:
        check_reachable(workdir, "--workdir")
    _check_paths(config, ("split",) if "split" in config else (), ("m2e2_dir", "images_dir"), prefix="")
    if "candidates" in config:
        check_candidates(config.candidates, "candidates.")
        _check_paths(config.candidates, ("detections",), (), prefix="candidates.")
    if config.model.hf_dir:
        _check_model_dir(config.model.hf_dir, "model.hf_dir")
    _check_decode(config)
    if config.get("prompts"):
        _check_prompts(config.prompts, "prompts")
    if not config.checkpoint:
        return None
    check_reachable(config.checkpoint, "--config.checkpoint")
    return find_checkpoints(config.checkpoint, "checkpoint")


def _check_stages(config) -> None:
    stages = tuple(config.stages)
    if not stages:
        raise ConfigError('--config.stages is empty; name the stages to run, e.g. \'("stage1", "stage2")\'')
    for name in stages:
        if name not in config or not all(k in config[name] for k in STAGE_KEYS):
            raise ConfigError(
                f"--config.stages names {name!r}, which is not a stage block of this config "
                f"(a stage has {', '.join(STAGE_KEYS)}); known: {[k for k in config if _is_stage(config[k])]}"
            )
        stage = config[name]
        unknown = [t for t in stage.tasks if t not in grammar.TASKS]
        if unknown:
            raise ConfigError(f"--config.{name}.tasks: unknown task(s) {unknown}; tasks are {list(grammar.TASKS)}")
        weights = dict(stage.tasks)
        if any(not isinstance(w, (int, float)) or w < 0 for w in weights.values()) or not any(weights.values()):
            raise ConfigError(f"--config.{name}.tasks={weights}: weights must be >= 0 with at least one > 0")
        if stage.steps < 1:
            raise ConfigError(f"--config.{name}.steps={stage.steps}: must be at least 1")
    _check_buckets(config.data.buckets, "data.buckets")
    _check_decode(config)
    _check_prompts(config.data.get("prompts", "full"), "data.prompts")
    _check_multimedia(config)
    share = config.data.get("eventless_share", 1.0)
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"--config.data.eventless_share={share}: a share in [0, 1]")
    prefetch = config.data.get("prefetch", 2)
    if not isinstance(prefetch, int) or prefetch < 0:
        raise ConfigError(f"--config.data.prefetch={prefetch}: batches featurised ahead, an integer >= 0")
    if config.checkpoint.every < 1 or config.checkpoint.keep < 1:
        raise ConfigError(
            f"--config.checkpoint.every={config.checkpoint.every} and --config.checkpoint.keep="
            f"{config.checkpoint.keep} must both be at least 1"
        )


def _check_decode(config) -> None:
    """The `decode` block (`DecodeSettings` names the key of a bad value), and no renamed key."""
    check_not_renamed(config)
    DecodeSettings.from_config(config.get(BLOCK))


def _check_multimedia(config) -> None:
    """The multimedia task's pair settings."""
    block = config.data.get("multimedia")
    if block is None:
        return
    if not 0.0 <= block.same_doc_negatives <= 1.0:
        raise ConfigError(f"--config.data.multimedia.same_doc_negatives={block.same_doc_negatives}: a share in [0, 1]")
    if not isinstance(block.other_doc_negatives, int) or block.other_doc_negatives < 0:
        raise ConfigError(
            f"--config.data.multimedia.other_doc_negatives={block.other_doc_negatives}: "
            "photos per positive pair, an integer >= 0"
        )


def check_candidates(block, prefix: str) -> None:
    """The candidate-box settings (`data.candidates` / predict's `candidates`); unset keys
    (predict: taken from the training run) are not checked."""
    tasks = block.get("tasks")
    if tasks is not None and any(t not in CANDIDATE_TASKS for t in tasks):
        raise ConfigError(f"--config.{prefix}tasks={tuple(tasks)}: candidates apply to {CANDIDATE_TASKS} only")
    min_iou = block.get("min_iou")
    if min_iou is not None and not 0.0 < min_iou <= 1.0:
        raise ConfigError(f"--config.{prefix}min_iou={min_iou}: must be in (0, 1]")
    min_score = block.get("min_score")
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise ConfigError(f"--config.{prefix}min_score={min_score}: must be in [0, 1]")
    most = block.get("max_per_image")
    if most is not None and most < 0:
        raise ConfigError(f"--config.{prefix}max_per_image={most}: must be >= 0 (0: every detection)")


def _check_m2e2_block(block) -> None:
    _check_paths(block, ("split",), ("dir",), prefix="data.m2e2.")
    train, heldout = block.train_part, block.heldout_part
    if train not in PARTS or heldout not in (*PARTS, ""):
        raise ConfigError(
            f"--config.data.m2e2.train_part={train!r} / heldout_part={heldout!r}: parts are {PARTS} "
            "(heldout_part '' scores nothing)"
        )
    if train == heldout:
        raise ConfigError(f"--config.data.m2e2.heldout_part={heldout!r} is the part trained on; score another part")


def _check_prompts(style, key: str) -> None:
    if style not in PROMPT_STYLES:
        raise ConfigError(f"--config.{key}={style!r}: prompt styles are {PROMPT_STYLES}")


def _is_stage(value) -> bool:
    return hasattr(value, "keys") and all(k in value for k in STAGE_KEYS)


def _check_buckets(buckets, key: str) -> None:
    if not buckets or any(not isinstance(b, int) or b < 1 for b in buckets):
        raise ConfigError(f"--config.{key}={tuple(buckets)}: give positive token lengths, e.g. '(512, 1024)'")


def _check_mesh_and_batch(config) -> None:
    try:
        mesh = shd.make_mesh(mesh_shape(config))
    except ValueError as e:
        raise ConfigError(f"--config.mesh_shape: {e}; -1 takes the devices the other axes leave") from None
    data_axes = shd.normalize_rules(None, mesh)["batch"]
    batch, accum, processes = config.data.batch_size, config.train.grad_accum, jax.process_count()
    if batch < 1 or accum < 1:
        raise ConfigError(f"--config.data.batch_size={batch} and --config.train.grad_accum={accum} must be >= 1")
    need = batch_multiple(mesh, accum)
    split = (
        f"the batch is split over the mesh's data axes { ({a: mesh.shape[a] for a in data_axes}) }, "
        f"{accum} gradient-accumulation steps and {processes} processes"
    )
    if batch % need:
        raise ConfigError(f"--config.data.batch_size={batch}: {split}, so it must be a multiple of {need}")
    rows = config.data.get("pack_rows", 0)
    if not isinstance(rows, int) or rows < 0 or rows % need:
        raise ConfigError(f"--config.data.pack_rows={rows}: 0 (as many as batch_size fills) or a multiple of {need}")
    length = config.data.get("pack_length", 0)
    if not isinstance(length, int) or length < 0:
        raise ConfigError(f"--config.data.pack_length={length}: tokens per packed row, 0 for the largest bucket")


def _check_paths(block, files, dirs, *, prefix: str) -> None:
    for key in files:
        path = block[key]
        if path and not (check_reachable(path, f"--config.{prefix}{key}") and paths.is_file(path)):
            raise ConfigError(f"--config.{prefix}{key}={path}: no such file; check the path")
    for key in dirs:
        path = block[key]
        if path and not (check_reachable(path, f"--config.{prefix}{key}") and paths.is_dir(path)):
            raise ConfigError(f"--config.{prefix}{key}={path}: no such directory; check the path")


def check_reachable(path: str, flag: str) -> bool:
    """True, after asking a URL's storage once: a failure to ask (no client library for the
    scheme, e.g. gcsfs for gs://, no credentials, no network) is a ConfigError naming `flag`
    (`--config.key` or `--workdir`) instead of a traceback from deep inside a run."""
    if paths.is_remote(path):
        try:
            paths.exists(path)
        except Exception as e:  # gcsfs, s3fs and their clients raise their own kinds
            detail = str(e).splitlines()[0] if str(e) else ""
            raise ConfigError(f"{flag}={path}: cannot reach it ({type(e).__name__}: {detail})") from None
    return True


def _check_model_dir(path: str, key: str) -> None:
    if paths.is_remote(path):
        raise ConfigError(
            f"--config.{key}={path}: a model directory must be a local path (its safetensors are "
            "memory-mapped and its tokenizer read from files); copy it to local disk first, e.g. "
            f"`gcloud storage cp -r {path} .`"
        )
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ConfigError(
            f"--config.{key}={path}: no config.json there; give a Hugging Face model directory "
            "(config.json, safetensors, tokenizer files) or a run's export/"
        )


def _init_from(config) -> str | None:
    init_from = config.init_from
    if init_from == FROM_BASE:
        return None
    if init_from:
        check_reachable(init_from, "--config.init_from")
        return find_checkpoints(init_from, "init_from")
    if config.stages[0] == "stage2":
        raise ConfigError(
            f"--config.stages starts with {config.stages[0]!r}, which continues a stage-1 run: set "
            f"--config.init_from=W (that run's directory, a stage directory or a checkpoints directory), "
            f"or --config.init_from={FROM_BASE} to start from the base model"
        )
    return None
