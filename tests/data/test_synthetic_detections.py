"""The synthetic detector: seeded, noisy in the three ways a real one is (missed, jittered,
extra objects), and leaves the corpus itself unchanged."""

from __future__ import annotations

from rmpl_jax.data.synthetic import generate_split
from rmpl_jax.data.synthetic_detections import DetectorNoise, synthetic_detections
from rmpl_jax.m2e2.candidates import best_candidate, oracle_coverage
from rmpl_jax.m2e2.records import ImageItem


def test_seeded_noisy_detections(tmp_path):
    split = generate_split("t", 40, tmp_path / "img", seed=1)
    again = generate_split("t", 40, tmp_path / "img2", seed=1)
    found = synthetic_detections(split, seed=1)
    assert found == synthetic_detections(again, seed=1)  # same seed, same detections
    assert found != synthetic_detections(split, seed=2)
    assert set(found) == {i.image_id for i in split.images}
    gold = [a for i in split.images for e in i.events for a in e.arguments]
    n_found = sum(len(d) for d in found.values())
    ious = [best_candidate(a.box, found[i.image_id])[1] for i in split.images for e in i.events for a in e.arguments]
    missed = sum(iou < 0.3 for iou in ious)
    assert 0 < missed < 0.3 * len(gold)  # some objects missed, most found
    assert sum(iou == 1.0 for iou in ious) < 0.1 * len(gold)  # boxes are jittered, not copied
    assert n_found > len(gold) - missed  # extra (false) detections
    assert all(list(d) == sorted(d, key=lambda x: -x.score) for d in found.values())
    items = [ImageItem(i.image_id, i.events, i.path, found[i.image_id]) for i in split.images]
    covered, total = oracle_coverage(items)
    assert total == len(gold) and 0.6 < covered / total < 0.98


def test_noise_free_detector_finds_every_object(tmp_path):
    split = generate_split("t", 10, tmp_path / "img", seed=0)
    exact = DetectorNoise(p_miss=0.0, jitter=0.0, extra=(0, 0))
    found = synthetic_detections(split, noise=exact)
    items = [ImageItem(i.image_id, i.events, i.path, found[i.image_id]) for i in split.images]
    covered, total = oracle_coverage(items)
    assert total > 0 and covered == total
