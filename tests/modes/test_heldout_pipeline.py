"""Which pipeline a training run's held-out decode uses: 'auto' follows the last stage (the
multimedia pipeline when that stage trains the multimedia task); an explicit choice wins."""

from configs import stage1, stage2
from rmpl_jax.modes.train import heldout_pipeline


def test_auto_follows_the_last_stage():
    config = stage1.get_config()
    assert heldout_pipeline(config) == "stage2"
    config.stage2.tasks.multimedia = 0.2
    assert heldout_pipeline(config) == "multimedia"
    config.decode.pipeline = "stage2"
    assert heldout_pipeline(config) == "stage2"  # the rule, for comparison on the same model
    config = stage1.get_config()
    config.stages = ("stage1",)
    assert heldout_pipeline(config) == "joint"
    assert heldout_pipeline(stage2.get_config()) == "stage2"
