"""Score predictions on M2E2 under the strict protocol.

python -m rmpl_jax.main --config configs/score_m2e2.py --config.predictions=P.jsonl
"""

import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    config.mode = "score"
    config.m2e2_dir = ""  # empty: $RMPL_SHARED_DATA/m2e2 or ../shared/data/m2e2
    config.images_dir = ""  # optional: report which referenced photos are missing
    config.predictions = ""  # empty: score the gold against itself (checks data and scorer)
    config.lenient = False  # skip and count bad annotation records instead of failing
    return config
