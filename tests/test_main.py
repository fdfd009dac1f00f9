"""User mistakes reaching `main` end in one line on stderr and a non-zero status; the
traceback only with --verbosity=1."""

import subprocess
import sys

import pytest

from tests.testing.subproc import REPO, worker_env


def _main(*args):
    command = [sys.executable, "-m", "rmpl_jax.main", *args]
    return subprocess.run(command, cwd=REPO, env=worker_env(1), capture_output=True, text=True, timeout=300)


def _one_line_error(proc, status, *parts):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and lines[-1].startswith("error: "), proc.stderr[-3000:]
    for part in parts:
        assert part in lines[-1], lines[-1]


@pytest.fixture
def bad_predictions(tmp_path, shared_data_dir):
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(b'{"kind": "coref", "sentence_id": "a", "image_id": "b", "event_type": "Life:Die"}\n{"\xff"}\n')
    return path


def test_bad_input_is_one_line(bad_predictions, shared_data_dir):
    args = ["--config", "configs/score_m2e2.py", f"--config.predictions={bad_predictions}"]
    args.append(f"--config.m2e2_dir={shared_data_dir / 'm2e2'}")
    _one_line_error(_main(*args), 1, f"{bad_predictions}:2: not UTF-8 text")
    verbose = _main(*args, "--verbosity=1")
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr and "PredictionError" in verbose.stderr


def test_command_line_mistakes_are_one_line(tmp_path):
    unknown = _main("--config", "configs/score_m2e2.py", "--config.lenent=True")
    _one_line_error(unknown, 2, "'lenent'", 'Did you mean "lenient"', "must name a key of the config")
    _one_line_error(_main("--config", str(tmp_path / "none.py")), 2, "none.py", "--config takes a config file")


def test_a_renamed_key_names_its_new_name():
    old = _main("--config", "configs/predict_m2e2.py", "--config.max_new_tokens=64")
    _one_line_error(old, 2, "--config.max_new_tokens is now --config.decode.max_new_tokens")
    old = _main("--config", "configs/stage1.py", "--config.eval.no_event_penalty=0.5")
    _one_line_error(old, 2, "--config.eval.no_event_penalty is now --config.decode.no_event_penalty")
