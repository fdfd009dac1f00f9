"""Building a stage's tasks from real-format sources: MNRE with only some photos trains
without mixing photo and text-only examples in a batch; unreadable photos and examples
longer than the largest bucket are found before training, as errors or counted skips."""

import pytest
from PIL import Image

from configs import stage1
from rmpl_jax.data import pipeline
from rmpl_jax.data.curriculum import real_sources, stage_tasks
from rmpl_jax.data.featurize import Featurizer
from rmpl_jax.io.read_report import DataError
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.models.qwen2_vl.processor import QwenProcessor
from tests.testing.codecs import codec_for
from tests.testing.tiny_tokenizer import save_tiny_processor_files, write_min_config

SIDE = 56
LINE = (
    "{'token': ['Bill', 'Cosby', 'visits', 'Ohio'], 'h': {'name': 'Bill Cosby', 'pos': [0, 2]}, "
    "'t': {'name': 'Ohio', 'pos': [3, 4]}, 'img_id': 'IMG', 'relation': '/per/loc/place_of_residence'}"
)


@pytest.fixture(scope="module")
def featurizer(tmp_path_factory):
    hf_dir = tmp_path_factory.mktemp("proc")
    save_tiny_processor_files(hf_dir, min_pixels=SIDE * SIDE)
    write_min_config(hf_dir)
    return Featurizer(QwenProcessor.from_dir(hf_dir), SIDE)


def _mnre(tmp_path, lenient):
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    for name in ("a.jpg", "b.jpg"):
        Image.effect_noise((40, 30), 30).convert("RGB").save(photos / name)
    (photos / "broken.jpg").write_bytes((photos / "a.jpg").read_bytes()[:100])
    names = ["a.jpg", "b.jpg", "broken.jpg", "absent.jpg", "a.jpg", "b.jpg"]
    (tmp_path / "mnre.txt").write_text("\n".join(LINE.replace("IMG", n) for n in names) + "\n")
    data = stage1.get_config().data
    data.mnre_path, data.mnre_images, data.lenient = str(tmp_path / "mnre.txt"), str(photos), lenient
    return data


def _tasks(sources, featurizer, weights, max_tokens=4096, lenient=False, skips=None):
    return stage_tasks(
        weights,
        sources,
        codec_for("qwen2_5_vl"),
        SIDE,
        token_lengths=featurizer.token_lengths,
        max_tokens=max_tokens,
        lenient=lenient,
        skips=skips if skips is not None else SkipRegistry(),
    )


def test_mnre_with_some_photos(tmp_path, featurizer):
    with pytest.raises(DataError, match=r"broken\.jpg: unreadable image"):
        real_sources(_mnre(tmp_path, lenient=False), SkipRegistry())
    skips = SkipRegistry()
    sources = real_sources(_mnre(tmp_path, lenient=True), skips)
    assert [r.image is not None for r in sources.relations] == [True, True, False, False, True, True]
    assert skips.counts() == {
        f"{tmp_path / 'mnre.txt'}: photo missing, trained text-only": 1,
        f"{tmp_path / 'mnre.txt'}: unreadable photo": 1,
    }
    tasks = _tasks(sources, featurizer, {"mnre": 3.0})  # the weight is shared 4:2
    assert [(t.name, len(t.examples), t.weight) for t in tasks] == [("mnre", 4, 2.0), ("mnre (text only)", 2, 1.0)]
    batches = pipeline.mixture(tasks, featurizer, batch_size=2, buckets=(4096,), pad_id=0, seed=1)
    seen = set()
    for batch, _ in zip(batches, range(8)):
        names = {tasks[t].name for t in batch["task_index"].tolist()}
        assert len(names) == 1 and ("pixel_values" in batch) == (names == {"mnre"})
        seen |= names
    assert seen == {"mnre", "mnre (text only)"}


def test_too_long_found_before_training(tmp_path, featurizer):
    sources = real_sources(_mnre(tmp_path, lenient=True), SkipRegistry())
    lengths = [featurizer.token_lengths(t.examples) for t in _tasks(sources, featurizer, {"mnre": 1.0})]
    cut = int(lengths[1].max())  # the text-only examples fit exactly; the photo ones are longer
    assert lengths[0].min() > cut
    with pytest.raises(DataError, match=rf"task mnre: 4 of 6 examples are longer than the largest bucket \({cut}"):
        _tasks(sources, featurizer, {"mnre": 1.0}, max_tokens=cut)
    skips = SkipRegistry()
    tasks = _tasks(sources, featurizer, {"mnre": 1.0}, max_tokens=cut, lenient=True, skips=skips)
    assert [(t.name, len(t.examples)) for t in tasks] == [("mnre", 2)]  # only text-only ones left: one source
    assert skips.counts() == {f"mnre: longer than the largest bucket ({cut} tokens)": 4}


def test_candidate_tasks_ground_boxes_and_count_drops(tmp_path):
    from rmpl_jax.data.curriculum import CandidateSettings, synthetic_sources, task_examples

    codec = codec_for("qwen2_5_vl")
    settings = CandidateSettings(tasks=("image_argument",), min_iou=0.5)
    skips = SkipRegistry()
    sources, heldout = synthetic_sources(
        str(tmp_path), seed=0, train_docs=12, heldout_docs=3, candidates=settings, skips=skips
    )
    assert all(i.candidates is not None for i in sources.images + heldout.images)
    grounded = task_examples("image_argument", sources, codec, SIDE, settings, skips)
    assert grounded and all(ex.context.candidates is not None for ex in grounded)
    assert all("Candidates:" in ex.prompt for ex in grounded)
    lines = [line for ex in grounded if ex.target != "none" for line in ex.target.split("\n")]
    assert lines and all(line.split(": ", 1)[1] in ex_values for ex_values, line in _values_of(grounded))
    gold = sum(len(e.arguments) for i in sources.images for e in i.events)
    dropped = sum(n for reason, n in skips.counts().items() if "without a candidate" in reason)
    assert 0 < dropped < gold and len(lines) == gold - dropped
    free = task_examples("visual_ee", sources, codec, SIDE, settings, skips)  # not a candidate task here
    assert all(ex.context.candidates is None and "Candidates" not in ex.prompt for ex in free)
    plain, _ = synthetic_sources(str(tmp_path), seed=0, train_docs=12, heldout_docs=3)
    assert plain.sentences == sources.sentences and [i.events for i in plain.images] == [
        i.events for i in sources.images
    ]  # detections come from their own random stream: the corpus is the same


def _values_of(examples):
    for ex in examples:
        if ex.target != "none":
            for line in ex.target.split("\n"):
                yield ex.context.candidates, line


def test_eventless_share_thins_only_sentences_without_events_and_only_in_whole_sentence_tasks():
    from rmpl_jax.data.curriculum import Sources, TextTaskSettings, task_examples
    from rmpl_jax.m2e2.records import Sentence, Span, TextEvent

    event = TextEvent("Conflict:Attack", Span(1, 2))
    with_events = [Sentence(f"d_{i}", ("troops", "attacked"), (event,)) for i in range(50)]
    without = [Sentence(f"e_{i}", ("it", "rained")) for i in range(1000)]
    sources = Sources(tuple(with_events + without))
    codec = codec_for("qwen2_5_vl")
    quarter = TextTaskSettings(brief=True, eventless_share=0.25)
    mentions = task_examples("text_mention", sources, codec, SIDE, text=quarter)
    kept_without = [ex for ex in mentions if ex.target == "none"]
    assert len(mentions) - len(kept_without) == 50  # every sentence with an event
    assert 200 <= len(kept_without) <= 300  # about a quarter of the others ...
    again = task_examples("text_ee", sources, codec, SIDE, text=quarter)
    assert [ex.item_id for ex in again if ex.target == "none"] == [
        ex.item_id for ex in kept_without
    ]  # ... the same ones
    assert len(task_examples("text_argument", sources, codec, SIDE, text=quarter)) == 50
    assert len(task_examples("text_mention", sources, codec, SIDE)) == 1050  # the default keeps all
    assert all("Event types" not in ex.prompt for ex in mentions)  # brief prompts


def test_multimedia_examples_from_the_synthetic_pairs(tmp_path):
    from rmpl_jax.data.curriculum import CandidateSettings, synthetic_sources, task_examples
    from rmpl_jax.m2e2 import parse

    codec = codec_for("qwen2_5_vl")
    sources, _ = synthetic_sources(str(tmp_path), seed=0, train_docs=12, heldout_docs=3)
    examples = task_examples("multimedia", sources, codec, SIDE)
    positives = [ex for ex in examples if ex.target != "none"]
    assert len(positives) == len(sources.coref) and len(examples) > len(positives)
    for ex in examples:  # every example parses back, in the model's frame
        assert ex.image and ex.context.image_size == (SIDE, SIDE)
        assert parse.parse(ex.target, ex.context).failures == 0
    assert {ex.item_id for ex in positives} == {f"{c.sentence_id}\t{c.image_id}" for c in sources.coref}

    settings = CandidateSettings(tasks=("multimedia",))
    skips = SkipRegistry()
    grounded_sources, _ = synthetic_sources(
        str(tmp_path), seed=0, train_docs=12, heldout_docs=3, candidates=settings, skips=skips
    )
    grounded = task_examples("multimedia", grounded_sources, codec, SIDE, settings, skips)
    assert all("Candidates:" in ex.prompt and ex.context.candidates is not None for ex in grounded)
    image_lines = [
        (ex.context.candidates, line) for ex in grounded for line in ex.target.split("\n") if line.startswith("image ")
    ]
    assert image_lines and all(line.split(": ", 1)[1] in values for values, line in image_lines)
    dropped = {r: n for r, n in skips.counts().items() if "without a candidate" in r}
    (multimedia_drops,) = dropped.values()  # every photo is in some pair: its drops counted once
    visual = SkipRegistry()
    task_examples("visual_ee", grounded_sources, codec, SIDE, CandidateSettings(tasks=("visual_ee",)), visual)
    assert multimedia_drops == sum(n for r, n in visual.counts().items() if "without a candidate" in r) > 0
