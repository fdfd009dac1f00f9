"""W/run.md: every part of the card is filled from what the run recorded."""

from rmpl_jax.eval.run_card import RunCard, StageSummary


def _card():
    card = RunCard(
        workdir="W",
        config_json='{\n "mode": "train"\n}',
        model={"model type": "qwen2_5_vl", "dtype": "float32"},
        data={"training records": "76 sentences, 16 images, 0 relation examples"},
        started=1_000_000.0,
    )
    card.stages.append(
        StageSummary(
            name="stage1",
            tasks={"text_ee": (76, 1.0), "visual_ee": (16, 0.5)},
            left_out=("mnre",),
            first_step=2,
            last_step=6,
            total_steps=6,
            seconds=8.0,
            compile_seconds=19.5,
            trainable_params=604_608,
            total_params=604_608,
            loss=(6.071, 5.595),
            input_tokens=1800.0,
            batch_tokens=2000.0,
            examples=30.0,
        )
    )
    return card


def test_card_lists_model_data_stages_and_config():
    text = _card().markdown(finished=1_000_150.0)
    assert "wall time 2 min 30 s" in text
    assert "- model type: qwen2_5_vl" in text and "- training records: 76 sentences" in text
    row = "| stage1 | 2 -> 6 (4) | 6 | 8.0 s | 19.5 s | 0.50 | 225 | 10.0% | 7.5 | 6.071 -> 5.595 | 604,608 / 604,608 |"
    assert row in text
    assert "- stage1 tasks: text_ee 76 examples (weight 1), visual_ee 16 examples (weight 0.5)" in text
    assert '```json\n{\n "mode": "train"\n}\n```' in text
    assert "No scores: this run scored nothing." in text and "- nothing was skipped" in text


def test_card_shows_scores_and_skips(tmp_path):
    card = _card()
    s = {"p": 0.5, "r": 0.25, "f1": 1 / 3, "tp": 1, "pred": 2, "gold": 4}
    card.scores = {"text_event": s, "variants": {"text_argument_head": s}}
    card.scores_about = "Held-out synthetic data."
    card.skips = ["stage1: task mnre had no examples and was left out of the mixture"]
    path = card.write(str(tmp_path / "run.md"))
    text = open(path).read()
    assert "| text_event | 50.0 | 25.0 | 33.3 | 1 | 2 | 4 |" in text
    assert "| text_argument_head | 50.0 | 25.0 | 33.3 | 1 | 2 | 4 |" in text
    assert "- stage1: task mnre had no examples and was left out of the mixture" in text
