"""The HTML report of a predictions file on M2E2 (scores, errors, photos with boxes).

python -m rmpl_jax.main --config configs/report.py --config.predictions=P.jsonl --workdir W

Writes W/report.html. Without `--config.predictions` the page shows the gold against itself.
"""

import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    config.mode = "report"
    config.predictions = ""  # empty: the gold annotations (a look at the data)
    config.m2e2_dir = ""  # empty: $RMPL_SHARED_DATA/m2e2 or ../shared/data/m2e2
    config.images_dir = ""  # empty: <m2e2_dir>/images when it exists
    config.lenient = False  # skip and count bad annotation records instead of failing
    config.title = ""  # empty: named after the predictions file
    return config
