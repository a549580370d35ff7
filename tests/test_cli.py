"""The `grok` command: config files, overrides, listing, and a killed run that resumes where it stopped."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from grok_core.cli import configs_from_spec, main
from grok_core.config import RunConfig
from grok_core.runner import load_or_train
from grok_core.store import RunStore

REPO = Path(__file__).resolve().parents[1]
TINY = {"p": 7, "d_model": 8, "n_heads": 2, "d_mlp": 16, "frac_train": 0.5, "n_steps": 5}


def test_spec_forms_expand_to_configs():
    assert configs_from_spec(TINY) == [RunConfig(**TINY)]
    assert len(configs_from_spec([TINY, TINY | {"fn": "mul"}])) == 2
    grid = configs_from_spec({"base": TINY, "grid": {"split": ["strip"], "split_param": [1, 2]}, "seeds": 3})
    assert len(grid) == 6 and {c.split_param for c in grid} == {1, 2}
    assert {(c.init_seed, c.split_seed) for c in grid} == {(0, 0), (1, 1), (2, 2)}
    with pytest.raises(ValueError, match="unknown config field"):
        configs_from_spec({"p": 7, "sead": 1})


def test_run_list_show(tmp_path, capsys):
    cfg_file = tmp_path / "runs.yaml"
    cfg_file.write_text("base: {p: 7, d_model: 8, n_heads: 2, d_mlp: 16, n_steps: 5}\ngrid: {frac_train: [0.4, 0.6]}\n")
    root = str(tmp_path / "res")
    assert main(["--results", root, "run", str(cfg_file), "--set", "lr=0.003"]) == 0
    out = capsys.readouterr().out
    assert out.count("transformer") == 0 and len(out.strip().splitlines()) == 4   # header, rule, 2 runs
    assert main(["--results", root, "list"]) == 0
    listing = capsys.readouterr().out
    assert "2 run(s)" in listing
    key = RunConfig(**(TINY | {"frac_train": 0.4, "lr": 0.003})).key()
    assert main(["--results", root, "show", key[:8]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["meta"]["config"]["lr"] == 0.003 and shown["summary"]["steps"] == 5


def test_thinned_run_from_the_command_line(tmp_path, capsys):
    root = str(tmp_path)
    sets = [f"{k}={v}" for k, v in (TINY | {"n_steps": 9, "record_dense": 2, "record_every": 3}).items()]
    assert main(["--results", root, "run"] + [a for kv in sets for a in ("--set", kv)]) == 0
    key = RunConfig(**(TINY | {"n_steps": 9, "record_dense": 2, "record_every": 3})).key()
    capsys.readouterr()
    assert main(["--results", root, "show", key]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["steps"] == 9 and summary["recorded_steps"] == 5          # steps 0, 1, 3, 6, 8


def test_bad_input_gives_a_clear_error_and_exit_code_2(tmp_path, capsys):
    assert main(["--results", str(tmp_path), "run", "--set", "p=10"]) == 2
    assert "p=10 is not allowed" in capsys.readouterr().err
    assert main(["--results", str(tmp_path), "run", "--set", "fn=div"]) == 2
    assert "fn='div'" in capsys.readouterr().err


def test_killed_run_resumes_from_its_checkpoint(tmp_path):
    """SIGKILL a training process after its first checkpoint; a rerun resumes and matches an uninterrupted run."""
    sets = ["p=11", "d_model=16", "n_heads=2", "d_mlp=32", "frac_train=0.5", "n_steps=400"]
    args = [sys.executable, "-m", "grok_core", "--results", str(tmp_path / "a"), "run", "--ckpt-every", "20",
            "--device", "cpu"] + [x for s in sets for x in ("--set", s)]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpts = tmp_path / "a" / "checkpoints"
    deadline = time.time() + 120
    while not (ckpts.exists() and any(ckpts.glob("*.pt"))):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = __import__("torch").load(next(ckpts.glob("*.pt")), weights_only=True)
    assert 0 < state["step"] < 400
    assert subprocess.run(args, cwd=REPO, env=env, capture_output=True).returncode == 0
    cfg = RunConfig.from_dict({k: __import__("yaml").safe_load(v) for k, v in (s.split("=") for s in sets)})
    resumed = RunStore(tmp_path / "a").get(cfg)
    assert resumed is not None and not any(ckpts.glob("*.pt"))
    [fresh] = load_or_train([cfg], store=RunStore(tmp_path / "b"), device="cpu", progress=False)
    for k, v in fresh.history.items():
        np.testing.assert_array_equal(resumed.history[k], v, err_msg=k)
