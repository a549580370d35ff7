"""Helpers shared by the book's notebooks: profiles, parameter checks, quiet run loading.

A notebook's `parameters` cell names a profile ("paper" or "quick") and leaves every other
setting at None, meaning "take the profile's value"; anything given (papermill -p) overrides it.
`resolve` merges the two and `require` checks notebook-level values, so a bad parameter stops
the notebook with a clear ValueError before any training starts.
"""
from __future__ import annotations

import time
import warnings

from .config import RunConfig
from .runner import load_or_train


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


def seed_list(n_seeds) -> list[int]:
    require(isinstance(n_seeds, int) and not isinstance(n_seeds, bool) and n_seeds >= 1, "n_seeds", n_seeds,
            "it must be an integer >= 1 (runs use init seeds 0..n_seeds-1)")
    return list(range(n_seeds))


def load_runs(configs: list[RunConfig], train: bool = True):
    """load_or_train without progress bars or split warnings; prints how many runs were found or trained.

    Raises LookupError (from load_or_train) when train is False and a run is missing.
    """
    from .store import RunStore

    store = RunStore()
    n_unique = len({c.key() for c in configs})
    hits = sum(store.entry(k).exists() for k in {c.key() for c in configs})
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # shrunk splits are reported by the notebooks
        runs = load_or_train(configs, store=store, progress=False, train=train)
    print(f"{n_unique} run(s): {hits} from the run store, {n_unique - hits} trained now "
          f"({time.time() - t0:.1f} s); store: {_shown(store.root)}")
    return runs


def _shown(path) -> str:
    """The store folder relative to the repository, or the variable that named it."""
    import os

    from .store import ENV_VAR, REPO_ROOT

    try:
        return str(path.resolve().relative_to(REPO_ROOT)) + "/"
    except ValueError:
        return f"${ENV_VAR}" if os.environ.get(ENV_VAR) else str(path)


def provenance_rows(runs) -> list[list[str]]:
    """Where the runs came from, one row per training batch: runs, config hashes (the first few),
    device, torch, code commit, and the batch's training wall time."""
    batches: dict[tuple, list[str]] = {}
    for r in {r.key: r for r in runs}.values():
        m = r.meta
        where = (str(m.get("device", "?")), str(m.get("torch", "?")), str(m.get("code_commit", "?")),
                 m.get("wall_time_s", float("nan")), m.get("batch_size", "?"))
        batches.setdefault(where, []).append(r.key)
    rows = []
    for (device, torch_version, commit, wall, size), keys in batches.items():
        shown = ", ".join(f"`{k}`" for k in keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        rows.append([str(len(keys)), shown, device, torch_version, commit, f"{wall:.0f} s (batch of {size})"])
    return rows


PROVENANCE_HEADERS = ["runs", "config hashes", "device", "torch", "code commit", "training time"]
