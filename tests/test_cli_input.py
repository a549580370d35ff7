"""Bad input to `grok run` is one line `grok: error: ...` with exit code 2, before anything trains;
what would not fit in memory or would train for days is refused with its estimate unless --force."""
import importlib.util
import itertools
from pathlib import Path

import pytest
import torch

from grok_core import budget, runner
from grok_core.cli import main
from grok_core.config import RunConfig
from grok_core.models import build_model
from grok_core.store import RunStore
from grok_core.train import recorded_steps

REPO = Path(__file__).resolve().parents[1]
# Bad values come after these, so that code which accepted them would train a tiny run, not the default one.
TINY = ["--set", "p=7", "--set", "d_model=8", "--set", "n_heads=2", "--set", "d_mlp=16", "--set", "frac_train=0.5",
        "--set", "n_steps=5", "--device", "cpu"]
TINY_BASE = "{p: 7, d_model: 8, n_heads: 2, d_mlp: 16, frac_train: 0.5, n_steps: 5}"


def refused(tmp_path, capsys, args: list[str], files: dict[str, str] | None = None) -> str:
    """Run `grok run args` (files written into tmp_path first); assert exit code 2, one stderr line
    `grok: error: ...` and an empty store; return the line."""
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    root = tmp_path / "res"
    code = main(["--results", str(root), "run", *[str(tmp_path / a) if a in (files or {}) else a for a in args]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("grok: error: ") and len(err.splitlines()) == 1, err
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())
    return err


@pytest.mark.parametrize("args,files,words", [
    (["--set", "lr=.nan"], None, ["lr=nan", "finite"]),
    (["--set", "lr=.inf"], None, ["lr=inf", "finite"]),
    (["--set", "wd=.nan"], None, ["wd=nan", "finite"]),
    (["--set", "wd=-.inf"], None, ["wd=-inf", "finite"]),
    (["--set", "beta1=.nan"], None, ["beta1=nan"]),
    (["c.yaml"], {"c.yaml": 'use_pos: "false"\n'}, ["use_pos='false'", "true or false"]),
    (["--set", "use_pos=1"], None, ["use_pos=1", "true or false"]),
])
def test_nonfinite_numbers_and_quoted_bools_are_refused(tmp_path, capsys, args, files, words):
    err = refused(tmp_path, capsys, TINY + args, files)
    assert all(w in err for w in words), err


@pytest.mark.parametrize("args,files,value", [
    (["--seeds", "-1"], None, "-1"),
    (["--seeds", "0"], None, "0"),
    (["--seeds", "1.5"], None, "1.5"),
    (["--seeds", "abc"], None, "'abc'"),
    (["--seeds", "true"], None, "True"),
    (["c.yaml"], {"c.yaml": f"base: {TINY_BASE}\nseeds: 0\n"}, "0"),
    (["c.yaml"], {"c.yaml": f"base: {TINY_BASE}\nseeds: -2\n"}, "-2"),
    (["c.yaml"], {"c.yaml": f"base: {TINY_BASE}\nseeds: 2.5\n"}, "2.5"),
])
def test_seeds_must_be_an_integer_of_at_least_one_everywhere(tmp_path, capsys, args, files, value):
    err = refused(tmp_path, capsys, TINY + args, files)
    assert f"seeds={value} is not allowed; it must be an integer >= 1" in err, err


@pytest.mark.parametrize("setting,words", [
    ("n_steps=1.5", ["n_steps=1.5", "integer"]),
    ("n_layers=2.5", ["n_layers=2.5", "integer"]),
    ("init_seed=1.5", ["init_seed=1.5", "integer"]),
    ("lr=abc", ["lr='abc'", "finite number"]),
    ("split_param=abc", ["split_param='abc'", "integer"]),
    ("n_steps=1e10", ["n_steps='1e10'", "write 1.0e+10"]),          # PyYAML: no point, no signed exponent: text
    ("n_steps=1.0e10", ["n_steps='1.0e10'", "write 1.0e+10"]),
    ("p=[", ["--set 'p=['", "not valid YAML"]),
])
def test_fractional_or_textual_numbers_are_refused(tmp_path, capsys, setting, words):
    err = refused(tmp_path, capsys, TINY + ["--set", setting])
    assert all(w in err for w in words), err


@pytest.mark.parametrize("args,words", [
    (["--ckpt-every", "0"], ["--ckpt-every=0", ">= 1"]),
    (["--ckpt-every", "-5"], ["--ckpt-every=-5", ">= 1"]),
    (["--ckpt-every", "abc"], ["--ckpt-every='abc'", ">= 1"]),
    (["--max-batch", "0"], ["--max-batch=0", ">= 1"]),
])
def test_count_options_are_checked_before_training(tmp_path, capsys, args, words):
    err = refused(tmp_path, capsys, TINY + args)
    assert all(w in err for w in words), err


@pytest.mark.parametrize("text,words", [
    ("p: [7\n  fn: add\n", ["c.yaml is not valid YAML at line 2"]),
    ("base: [1, 2]\n", ["base=[1, 2]", "mapping"]),
    ("base: {p: 7}\ngrid: 5\n", ["grid=5", "lists of values"]),
    ("base: {p: 7}\ngrid: {frac_train: []}\n", ["grid frac_train=[]", "at least one value"]),
    ("[]\n", ["no configs"]),
    ("{1: 2, a: 3}\n", ["unknown config field(s) [1, 'a']"]),
])
def test_malformed_config_files_are_refused(tmp_path, capsys, text, words):
    err = refused(tmp_path, capsys, ["c.yaml"], {"c.yaml": text})
    assert all(w in err for w in words), err


def test_unusable_devices_are_refused(tmp_path, capsys, monkeypatch):
    assert "--device 'foo' is not allowed" in refused(tmp_path, capsys, TINY + ["--device", "foo"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "--device 'cuda' is not available" in refused(tmp_path, capsys, TINY + ["--device", "cuda"])


def test_what_cannot_fit_or_would_take_days_is_refused_with_its_estimate(tmp_path, capsys, monkeypatch):
    err = refused(tmp_path, capsys, ["--set", "p=10007", "--device", "cpu"])
    assert "p=10007" in err and "8.68 TB" in err and "--force" in err
    assert "n_steps=10000000000" in refused(tmp_path, capsys, ["--set", "n_steps=1.0e+10", "--device", "cpu"])
    monkeypatch.setattr(budget, "free_bytes", lambda device: 1 << 50)
    err = refused(tmp_path, capsys, ["--set", "n_steps=100000000", "--device", "cpu"])
    assert "estimated" in err and " h on cpu" in err and "24 h limit" in err


def test_force_and_stored_runs_skip_the_estimate(tmp_path, capsys, monkeypatch):
    trained = []
    monkeypatch.setattr(runner, "load_or_train", lambda configs, **kw: trained.append(configs) or [])
    root = tmp_path / "res"
    assert main(["--results", str(root), "run", "--set", "p=10007", "--device", "cpu", "--force"]) == 0
    RunStore(root).entry(RunConfig(p=10007).key()).mkdir(parents=True)          # as if stored already
    assert main(["--results", str(root), "run", "--set", "p=10007", "--device", "cpu"]) == 0
    assert [c.p for batch in trained for c in batch] == [10007, 10007]


def test_equal_values_spelled_differently_train_one_run(tmp_path, capsys):
    root = str(tmp_path / "res")
    assert main(["--results", root, "run", *TINY, "--set", "wd=1"]) == 0
    assert main(["--results", root, "run", *TINY, "--set", "wd=1.0", "--set", "n_steps=5.0"]) == 0
    assert len(RunStore(root).list()) == 1


def test_budget_arithmetic_matches_what_it_stands_for():
    """budget's counts equal the model layout, recorded_steps and bench/arithmetic.py's
    per_sample_flops, which build tensors or loop over layers."""
    spec = importlib.util.spec_from_file_location("bench_arithmetic", REPO / "bench" / "arithmetic.py")
    arithmetic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(arithmetic)
    for model, L, emb, pos, p, (dense, every), n in itertools.product(
            ["transformer", "mlp"], [1, 2, 3], ["normal", "onehot"], [True, False], [7, 131],
            [(0, 1), (2, 3), (100, 1), (0, 1000)], [1, 9, 50]):
        c = RunConfig(model=model, n_layers=L, embed_init=emb, use_pos=pos, p=p, record_dense=dense,
                      record_every=every, n_steps=n, d_model=32, n_heads=4)
        assert budget.n_params(c) == build_model(c).layout.size
        assert budget.n_recorded(c) == len(recorded_steps(c))
        assert budget.pair_flops(c) == arithmetic.per_sample_flops(c)
