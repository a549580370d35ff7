"""A chapter's settings: its profile's values with the notebook's parameters over them, checked.

A notebook's `parameters` cell names a profile ("paper" or "quick") and leaves every other setting at
None, meaning "take the profile's value"; anything given (papermill -p) overrides it. `resolve` merges
the two and the checks below stop a bad parameter with a ValueError naming it, before anything trains.
"""
from __future__ import annotations

import dataclasses

from ..config import RunConfig

# History resolution of the paper profiles: every step below step 2,000, then every 20th step and the
# last; Table 1's rules smooth by step, so they apply unchanged. The quick profiles record every step.
PAPER_RECORD = dict(record_dense=2000, record_every=20)
FULL_RECORD = dict(record_dense=0, record_every=1)


def resolve(profiles: dict[str, dict], profile: str, given: dict) -> dict:
    """The profile's settings with every non-None value in `given` put over them."""
    if profile not in profiles:
        raise ValueError(f"profile={profile!r} is not allowed; choose one of {', '.join(map(repr, profiles))}")
    base = dict(profiles[profile])
    unknown = set(given) - set(base)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; this notebook knows {', '.join(sorted(base))}")
    out = {}
    for k, v in base.items():
        g = given.get(k)
        if g is not None:
            _check_type(k, g, v)
        out[k] = g if g is not None else v
    return out


def _check_type(name, value, like):
    """A given value must have the kind of the profile's value (lists may also be strings or numbers)."""
    number = (int, float)
    if isinstance(like, bool):
        ok = isinstance(value, bool)
    elif isinstance(like, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(like, float):
        ok = isinstance(value, number) and not isinstance(value, bool)
    elif isinstance(like, str):
        ok = isinstance(value, str)
    elif isinstance(like, (list, tuple)):
        ok = isinstance(value, (list, tuple, str) + number) and not isinstance(value, bool)
    else:
        ok = True
    if not ok:
        kind = "a list (or a comma-separated string)" if isinstance(like, (list, tuple)) else type(like).__name__
        raise ValueError(f"{name}={value!r} is not allowed; it must be {kind}, like the profile's {like!r}")


def require(ok: bool, name: str, value, allowed: str):
    """Raise ValueError naming the parameter, its value and what is allowed, unless ok."""
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; {allowed}")


def flag(name: str, value) -> bool:
    """A True/False parameter (e.g. `train`), refused when it is anything else."""
    require(isinstance(value, bool), name, value, "use True or False")
    return value


def count(name: str, value, least: int) -> int:
    """An integer parameter of at least `least` (bools refused)."""
    require(isinstance(value, int) and not isinstance(value, bool) and value >= least, name, value,
            f"it must be an integer >= {least}")
    return value


def _as_list(name: str, value, cast, kinds: tuple, what: str, example: str, empty_ok: bool = False) -> list:
    """A list (non-empty unless empty_ok) from a list/tuple, one value, or a comma-separated string;
    bools are refused."""
    if isinstance(value, str):
        try:
            value = [cast(v) for v in value.replace(" ", "").split(",") if v]
        except ValueError:
            raise ValueError(f"{name}={value!r} is not allowed; give {what}, e.g. {example}") from None
    elif isinstance(value, kinds) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not (value or empty_ok) or not all(
            isinstance(v, kinds) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{name}={value!r} is not allowed; give a {'' if empty_ok else 'non-empty '}list of {what}")
    return [cast(v) for v in value]


def as_int_list(name: str, value, empty_ok: bool = False) -> list[int]:
    """A list of ints from a list/tuple, one int, or a comma-separated string ("30,40")."""
    return _as_list(name, value, int, (int,), "integers", '[30, 40] or "30,40"', empty_ok)


def as_float_list(name: str, value) -> list[float]:
    """A list of floats from a list/tuple, one number, or a comma-separated string ("0.5,0.6")."""
    return _as_list(name, value, float, (int, float), "numbers", '[0.5, 0.6] or "0.5,0.6"')


def seed_pairs(S: dict) -> list[tuple[int, int]]:
    """(init seed, split seed) of every run of one setting: init seeds 0..n_seeds-1 crossed with
    split seeds split_seed..split_seed+n_split_seeds-1."""
    n_init = count("n_seeds", S["n_seeds"], 1)
    n_split = count("n_split_seeds", S["n_split_seeds"], 1)
    count("split_seed", S["split_seed"], 0)
    return [(i, S["split_seed"] + k) for k in range(n_split) for i in range(n_init)]


def run_config(S: dict, **fields) -> RunConfig:
    """The RunConfig of the settings in S named like its fields (p, lr, n_steps, the recording ...),
    with `fields` put over them: a setting shared by a chapter's runs is written once, in its profile."""
    own = {f.name for f in dataclasses.fields(RunConfig)}
    return RunConfig(**{k: v for k, v in S.items() if k in own} | fields)


def runs_per_seed_pairs(S: dict, settings: list[dict]) -> list[RunConfig]:
    """One run per setting (a dict of RunConfig fields) and seed pair, settings outermost."""
    return [run_config(S, **setting, init_seed=i, split_seed=s) for setting in settings for i, s in seed_pairs(S)]
