"""Bad input is refused on construction, with a message naming the parameter, value and what is allowed;
values are stored as their field's type, so that a config's key does not depend on how it was spelled."""
import csv
import dataclasses
import hashlib
import json
import math
from pathlib import Path

import pytest

from grok_core.config import SEMANTICS_VERSION, RunConfig

RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.mark.parametrize("kw,words", [
    (dict(fn="xy"), ["fn='xy'", "'add'"]),
    (dict(p=91), ["p=91", "prime"]),
    (dict(p=2), ["p=2", ">= 3"]),
    (dict(p=1), ["p=1", "prime"]),
    (dict(frac_train=0.0), ["frac_train=0.0", "(0, 1)"]),
    (dict(frac_train=1.0), ["frac_train=1.0", "(0, 1)"]),
    (dict(frac_train=-0.2), ["frac_train=-0.2"]),
    (dict(p=5, frac_train=0.01), ["frac_train=0.01", "empty train"]),
    (dict(split="rect"), ["split='rect'", "'square'"]),
    (dict(split="square", split_param=96), ["split_param=96", "0..95"]),
    (dict(split="strip", split_param=-1), ["split_param=-1", "t of the strip"]),
    (dict(split="random", split_param=3), ["split_param=3", "random"]),
    (dict(embed_init="xavier"), ["embed_init='xavier'", "'toeplitz'"]),
    (dict(embed_init="toeplitz", d_model=64), ["embed_init='toeplitz'", "d_vocab=98"]),
    (dict(model="cnn"), ["model='cnn'"]),
    (dict(act="tanh"), ["act='tanh'"]),
    (dict(loss="hinge"), ["loss='hinge'"]),
    (dict(precision="bf16"), ["precision='bf16'", "'tf32'"]),
    (dict(d_model=130), ["d_model=130", "n_heads=4"]),
    (dict(n_layers=0), ["n_layers=0"]),
    (dict(lr=0), ["lr=0"]),
])
def test_bad_input_names_parameter_value_and_choices(kw, words):
    with pytest.raises(ValueError) as err:
        RunConfig(**kw)
    for w in words:
        assert w in str(err.value)


def test_derived_fields_and_keys():
    c = RunConfig(p=47, operand_offset=60)
    assert c.d_vocab == 108 and c.d_mlp == 512
    assert RunConfig(d_model=256).d_mlp == 1024
    assert c.key() == RunConfig(p=47, operand_offset=60, d_mlp=512).key()     # resolved config is hashed
    assert c.key() != c.replace(init_seed=1).key()
    assert c.key() != c.replace(precision="tf32").key()                        # numerics name the run too
    assert RunConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown config field"):
        RunConfig.from_dict({"p": 5, "seed": 1})


def test_batch_key_separates_shapes_but_not_seeds_or_tasks():
    a = RunConfig(p=11)
    assert a.batch_key() == a.replace(init_seed=3, fn="mul", split="strip", split_param=2, lr=3e-3).batch_key()
    assert a.batch_key() != a.replace(p=13).batch_key()
    assert a.batch_key() != a.replace(embed_init="onehot").batch_key()
    assert a.batch_key() != a.replace(precision="tf32").batch_key()          # one matmul mode per batch


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(RunConfig) if f.type in ("int", "float")])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "3", None])
def test_numeric_fields_refuse_nonfinite_bools_and_text(name, value):
    with pytest.raises(ValueError, match=f"^{name}="):
        RunConfig(**{name: value})


@pytest.mark.parametrize("kw,words", [
    (dict(n_steps=1.5), ["n_steps=1.5", "an integer"]),
    (dict(use_pos="false"), ["use_pos='false'", "true or false"]),
    (dict(use_pos=0), ["use_pos=0", "true or false"]),
    (dict(fn=1), ["fn=1", "a string"]),
    (dict(lr="1e-3"), ["lr='1e-3'", "write 1.0e-3"]),
    (dict(wd=-1), ["wd=-1.0", ">= 0"]),
    (dict(beta2=1), ["beta2=1.0", "[0, 1)"]),
    (dict(init_seed=2 ** 64), ["init_seed=18446744073709551616", "2**64 - 1"]),
    (dict(p=2 ** 61 - 1), ["p=2305843009213693951", "2**31 - 1"]),     # a prime, refused before a slow test
    (dict(stop_acc=1.5), ["stop_acc=1.5", "(0, 1]", "never stop early"]),
    (dict(stop_acc=-0.1), ["stop_acc=-0.1", "(0, 1]"]),
    (dict(stop_acc=0.99, stop_hold=-1), ["stop_hold=-1", ">= 0"]),
    (dict(stop_acc=0.99, stop_after=-3), ["stop_after=-3", ">= 0"]),
    (dict(stop_after=3000), ["stop_after=3000", "stop_acc=0 (no stop rule)"]),
])
def test_values_of_the_wrong_type_or_range_are_refused(kw, words):
    with pytest.raises(ValueError) as err:
        RunConfig(**kw)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_fields_are_stored_as_their_declared_type_so_equal_configs_share_a_key():
    c = RunConfig(wd=1, lr=1, n_steps=30000.0, p=97.0, frac_train=0.3)
    assert c == RunConfig(wd=1.0, lr=1.0) and c.key() == RunConfig(wd=1.0, lr=1.0).key()
    assert type(c.wd) is float and type(c.n_steps) is int and type(c.p) is int
    assert RunConfig.from_dict(json.loads(json.dumps(c.to_dict()))).key() == c.key()


def test_stored_runs_keep_their_keys():
    """Every run of the manifest and every stored ResNet run rebuilds, from its meta.json, to its key."""
    from grok_core.resnet.config import ResNetConfig
    with open(RESULTS / "manifest.csv", newline="") as fh:
        keys = [row["key"] for row in csv.DictReader(fh)]
    assert len(keys) == 1627        # 1,611 chapter runs and the race's Muon check (16), which its hook trains
    for key in keys:
        meta = json.loads((RESULTS / "runs" / key / "meta.json").read_text())
        assert RunConfig.from_dict(meta["config"]).key() == key == meta["key"]
    resnet = sorted((RESULTS / "resnet-runs").glob("*/meta.json"))
    assert resnet
    for path in resnet:
        meta = json.loads(path.read_text())
        assert ResNetConfig.from_dict(meta["config"]).key() == path.parent.name == meta["key"]


def test_fields_added_later_change_the_key_only_away_from_their_default():
    """Runs stored before a field existed keep their keys; setting the field tells the run apart."""
    base = RunConfig()
    fields = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    assert set(RunConfig.LATER_FIELDS) <= set(fields)
    blob = json.dumps({"semantics": SEMANTICS_VERSION, **{k: v for k, v in base.to_dict().items()
                                                          if k not in RunConfig.LATER_FIELDS}}, sort_keys=True)
    assert base.key() == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert base.replace(output_scale=2.0).key() != base.key()
    assert base.replace(snapshots=4).key() != base.key() != base.replace(snapshot_dtype="float16").key()
    assert base.replace(stop_acc=0.99).key() != base.key() != base.replace(stop_acc=0.99, stop_hold=100).key()
