"""Bad input is refused on construction, with a message naming the parameter, value and what is allowed."""
import pytest

from grok_core.config import RunConfig


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
