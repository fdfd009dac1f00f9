"""Stage 2 alone (event-mention identification + argument roles), from a stage-1 run:

python -m rmpl_jax.main --config configs/stage2.py --config.init_from=W1/stage1 ...

(`init_from` takes the stage-1 run directory, its stage directory or its checkpoints
directory; `--config.init_from=base` trains stage 2 from the base model instead.)
"""

from configs import stage1


def get_config():
    c = stage1.get_config()
    c.stages = ("stage2",)
    return c
