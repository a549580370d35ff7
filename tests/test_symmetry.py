"""The symmetries of the tasks (grok_core/symmetry.py) and the ceilings chapter's reading of them, on exact inputs:
constructed splits whose shares are known, group orders that follow from the algebra, and verdicts on both sides of
each threshold of the chapter's rule."""
from types import SimpleNamespace

import numpy as np
import pytest

from grok_core import symmetry
from grok_core.chapters import ceilings, fig4_x2xyy2_frac, setup
from grok_core.chapters.runs import quiet_split
from grok_core.config import RunConfig
from grok_core.tasks import FUNCTIONS, labels


# -- the maps ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [7, 13, 23, 97])
@pytest.mark.parametrize("fn", list(FUNCTIONS))
def test_every_named_map_keeps_its_function_on_every_pair(fn, p):
    y = labels(fn, p).numpy()
    for name in symmetry.SYMMETRIES[fn]:
        perm = symmetry.permutation(name, p)
        if perm is None:                                   # a cube root of unity where p ≡ 2 (mod 3)
            assert name.startswith("cube root") and p % 3 == 2
            continue
        assert sorted(perm) == list(range(p * p)) and (y[perm] == y).all(), (fn, name)
        assert symmetry.holds(fn, name, p)


def test_a_map_that_is_no_symmetry_is_refused():
    assert not symmetry.holds("subtract", "mirror", 97)          # i − j ≠ j − i
    assert not symmetry.holds("x2_xy_y2", "negate i", 97)        # (−i)² − ij + j² ≠ i² + ij + j²
    assert not symmetry.holds("x3_xy_y3", "negate", 97)          # the cubes change sign
    assert not symmetry.holds("x3_y3", "cube root i", 23)        # no cube root of unity but 1 at p = 23


def test_cube_roots_of_unity_and_primitive_roots():
    for p in (7, 13, 97):
        w = symmetry.cube_root_of_unity(p)
        assert w != 1 and pow(w, 3, p) == 1
        g = symmetry.primitive_root(p)
        assert len({pow(g, k, p) for k in range(p - 1)}) == p - 1
    assert symmetry.cube_root_of_unity(23) is None and symmetry.cube_root_of_unity(11) is None


def test_every_map_is_affine_and_reflect_is_the_matrix_it_says():
    for name in symmetry.MAPS:
        symmetry.affine(name, 13)                                  # raises if the map were not affine
    M = symmetry.affine("reflect", 13)                             # (i, j) -> (i, −i − j)
    assert (M == np.array([[1, 0, 0], [12, 12, 0], [0, 0, 1]])).all()


# -- the groups -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [7, 23, 97])
def test_the_group_of_x2_xy_y2_has_order_12(p):
    perms = [symmetry.permutation(m, p) for m in symmetry.group_maps("x2_xy_y2", p)]
    assert symmetry.group_order("x2_xy_y2", p) == 12 == len(symmetry.group_elements(perms))


def test_group_orders_follow_from_the_maps():
    assert symmetry.group_order("add", 97) == 2 * 97           # the shift has order p, the mirror 2
    assert symmetry.group_order("x2_y2", 97) == 8              # signs and the swap
    assert symmetry.group_order("x3_y3", 97) == 18             # 3 × 3 cube roots, and the swap
    assert symmetry.group_order("x3_y3", 23) == 2              # only the swap
    assert symmetry.group_order("x3_xy_y3", 97) == 6
    assert symmetry.group_order("mul", 97) == 2 * 96


def test_the_orbits_of_x_plus_y_are_its_classes_those_of_x2_xy_y2_are_not():
    assert symmetry.orbits_are_classes("add", 23) == 1.0
    assert symmetry.orbits_are_classes("x2_xy_y2", 97) == 0.0
    lab = symmetry.orbits("add", 7)
    assert len(set(lab)) == 7                                   # one orbit per value of i + j
    assert len(set(symmetry.orbits("x2_xy_y2", 97))) > 97       # many orbits per class


def test_the_linear_symmetries_of_a_quadratic_form_outnumber_its_integer_group():
    # x² + xy + y² mod p: 2(p − 1) linear symmetries for p ≡ 1 (mod 3); at p = 7 that is exactly the order-12 group
    assert len(symmetry.linear_symmetries("x2_xy_y2", 7)) == 12
    assert len(symmetry.linear_symmetries("x2_xy_y2", 13)) == 24
    assert len(symmetry.linear_symmetries("x3_xy_y3", 13)) == 6     # for the cubic, only the named ones
    assert symmetry.full_orbits_are_classes("x2_xy_y2", 23) == 1.0
    assert symmetry.full_orbits_are_classes("x3_xy_y3", 23) == 0.0


# -- shares of constructed splits -------------------------------------------------------------------------
def triangle(p: int):
    """Train = the upper triangle i < j; test = i ≥ j in i-major order."""
    i, j = np.divmod(np.arange(p * p), p)
    train = i < j
    return train, np.nonzero(~train)[0], i, j


def test_a_train_set_of_the_upper_triangle_mirrors_every_lower_test_pair():
    p = 11
    train, test, i, j = triangle(p)
    mirror = symmetry.permutation("mirror", p)
    lower = test[i[test] > j[test]]
    assert symmetry.mapped_share(train, lower, mirror) == 1.0
    assert symmetry.mapped_share(train, test[i[test] == j[test]], mirror) == 0.0     # the diagonal is its own mirror
    assert symmetry.mapped_share(train, test, mirror) == pytest.approx((p - 1) / (p + 1))


def test_the_orbit_share_of_a_one_pair_train_set_is_its_class():
    p = 11
    train = np.zeros(p * p, dtype=bool)
    train[3 * p + 5] = True                                      # (3, 5): class 8 of x + y
    test = np.nonzero(~train)[0]
    y = labels("add", p).numpy()
    assert symmetry.orbit_share(train, test, symmetry.orbits("add", p)) == pytest.approx((p - 1) / (p * p - 1))
    assert (y[test][symmetry.orbits("add", p)[test] == symmetry.orbits("add", p)[3 * p + 5]] == 8).all()
    assert symmetry.orbit_share(train, test, np.arange(p * p)) == 0.0     # trivial orbits reach nothing


def test_split_shares_of_a_real_split_and_fig4s_mirrored_share_agree():
    cfg = RunConfig(p=23, fn="x2_xy_y2", frac_train=0.5, split="random", split_seed=3)
    sh = symmetry.split_shares(cfg)
    assert sh["mirror"] == sh["maps"]["mirror"] == pytest.approx(symmetry.mirrored_share(cfg), abs=1e-6)
    assert fig4_x2xyy2_frac.mirrored_share is symmetry.mirrored_share
    assert sh["mirror"] <= sh["orbit"] <= sh["full_orbit"] <= 1.0
    assert symmetry.split_shares(cfg.replace(fn="subtract"))["mirror"] is None


def test_the_expected_mirror_share_of_random_splits():
    p, frac = 11, 0.5
    got = [symmetry.split_shares(RunConfig(p=p, frac_train=frac, split="random", split_seed=s))["mirror"] for s in range(300)]
    assert np.mean(got) == pytest.approx(ceilings.expected_mirror_share(p, int(frac * p * p)), abs=0.01)


# -- the chapter --------------------------------------------------------------------------------------------
def row(u, m, fn="x2_xy_y2", split="random", **kw) -> dict:
    return {"chapter": "c", "row": "r", "fn": fn, "p": 97, "split": split, "split_param": 0, "frac": 0.5, "offset": 0,
            "same_runs_as": None, "u_acc": [u, u], "late_test_acc": [u, u], "mirror_share": [m, m],
            "orbit_share": [1.0, 1.0], "full_orbit_share": [1.0, 1.0], "map_shares": {"mirror": [m, m]},
            "group_order": 12, "orbits_are_classes": 0.0, "full_orbits_are_classes": 1.0} | kw


@pytest.mark.parametrize("u, where", [(0.529, "at"), (0.471, "at"), (0.531, "above"), (0.469, "below")])
def test_a_row_lies_at_its_mirror_share_within_three_points(u, where):
    assert ceilings.place(row(u, 0.5)) == where


def test_a_row_without_a_mirror_or_a_memorised_run_has_no_place():
    assert ceilings.place(row(0.5, None, fn="subtract")) is None
    assert ceilings.place(row(None, 0.5)) is None


S = {"chapters": ["fig4_x2xyy2_frac"]}


@pytest.mark.parametrize("us, verdict", [
    ([0.51, 0.62], "reproduced"),
    ([0.51, 0.55], "partly reproduced"),          # the second row 5 points below its mirror share
    ([0.51, 0.64], "contradicted"),               # 4 points above
    ([], "not reproduced"),
])
def test_the_verdict_follows_the_rows_of_x2_xy_y2(us, verdict):
    settings = [row(u, m) for u, m in zip(us, [0.5, 0.6])] + [row(1.0, 0.3, fn="add")]   # x + y rows do not count
    assert ceilings.result(S, {"settings": settings}).verdict == verdict


def test_a_row_holding_another_rows_runs_counts_once():
    settings = [row(0.5, 0.5), row(0.7, 0.5, same_runs_as="c: r")]
    assert ceilings.result(S, {"settings": settings}).verdict == "reproduced"
    assert ceilings.by_function(settings)["x2_xy_y2"]["rows"] == 1


def fake_run(key: str, **config):
    cfg = RunConfig(p=7, n_steps=10, **config)
    acc = np.linspace(0, 1, 10)
    return SimpleNamespace(config=cfg, key=key, meta={},
                           history={"step": np.arange(10), "train_acc": np.ones(10), "test_acc": acc})


def test_claims_group_runs_into_rows_and_name_shared_runs():
    a = [fake_run("a", split_seed=0, frac_train=0.5), fake_run("b", split_seed=1, frac_train=0.5),
         fake_run("c", split_seed=0, frac_train=0.6)]
    out = ceilings.claims({"chapters": ["one", "two"]}, {"one": a, "two": a[:2]})
    assert [(s["chapter"], s["row"], len(s["u_acc"])) for s in out] == [("one", "frac 0.5", 2), ("one", "frac 0.6", 1),
                                                                       ("two", "x+y", 2)]
    assert out[2]["same_runs_as"] == "one: frac 0.5" and out[0]["same_runs_as"] is None
    assert out[0]["group_order"] == 14 and out[0]["orbit_share"] == [1.0, 1.0]


def test_the_chapter_refuses_a_chapter_it_does_not_read():
    with pytest.raises(ValueError, match="chapters"):
        setup("ceilings", "quick", {"chapters": ["resnet"]})
    assert setup("ceilings", "quick", {"chapters": "fig4_x2xyy2_frac"})[0]["chapters"] == ["fig4_x2xyy2_frac"]
