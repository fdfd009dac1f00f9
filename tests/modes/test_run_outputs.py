"""The train mode's run card collects what reading and decoding skipped."""

from configs import stage1
from rmpl_jax.data.curriculum import Sources
from rmpl_jax.eval.run_card import RunCard
from rmpl_jax.io.read_report import DataError, ReadReport
from rmpl_jax.modes.run_outputs import note_heldout, start_card


def test_read_skips_are_on_the_card():
    report = ReadReport("ace/train.json", lenient=True, records=10)
    report.skip(DataError("ace/train.json: record 3: missing key 'words'"))
    report.counts["roles_outside_schema"] += 2
    config = stage1.get_config()
    config.model.hf_dir = "base"
    sources = Sources(reports=(report, ReadReport("mnre")))
    card = start_card(config, "{}", "W", "base", "qwen2_vl", "^layers/mlp/up_proj$", sources, None)
    assert card.skips == [
        "ace/train.json: 10 records, 1 skipped; roles_outside_schema=2",
        "ace/train.json: skipped ace/train.json: record 3: missing key 'words'",
    ]
    assert card.model["weights"] == "pretrained; trains LoRA rank 16 on `^layers/mlp/up_proj$`"
    assert "held-out data" not in card.data


def test_heldout_decode_failures_are_on_the_card():
    card = RunCard("W", "{}", {}, {})
    decode = {
        "missing_images": 0,
        "unfinished": 3,
        "parse_failures": {"text_mention": 2, "image_argument": 0},
        "items_with_failures": {"text_mention": 1, "image_argument": 0},
    }
    note_heldout(card, "M2E2 text, 'dev' documents", {"text_event": {}, "decode": decode}, "W/report.html")
    assert card.skips == [
        "held-out decoding: unfinished = 3",
        "held-out decoding: 2 outputs of text_mention did not parse (1 items)",
    ]
    assert card.scores["decode"] == decode and card.outputs == ["W/report.html"]
    assert card.scores_about.startswith("Held-out data (M2E2 text, 'dev' documents)")
