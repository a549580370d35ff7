"""The symmetries of the tasks f(i, j) mod p, and how much of a split's test set they reach from its train set.

A symmetry of f is a map σ of the p × p table onto itself with f(σ(i, j)) = f(i, j) for every pair. A model that
has learned σ can answer a test pair whose image σ(i, j) is a training pair; one that has learned nothing else
answers no other test pair. So the share of test pairs that a set of symmetries maps onto the train set is the
test accuracy that knowing those symmetries alone allows.

Each function's maps are named in SYMMETRIES; each is written with integer coefficients (valid at every p), except
the cube roots of unity, which exist only where p ≡ 1 (mod 3). None is trusted: `holds` checks a map against
`tasks.FUNCTIONS` on every pair, and `group_maps` keeps only the maps that hold at that p. `linear_symmetries`
finds, by search, every linear map mod p that preserves f, which for some functions is a much larger group.
A pair's orbit is everything its function's maps reach from it by repeated application; for f = i + j the shift
(i + 1, j − 1) alone reaches the pair's whole class, so there symmetry bounds nothing.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .tasks import FUNCTIONS, labels


def primitive_root(p: int) -> int:
    """The least generator of the multiplicative group mod the prime p."""
    factors = {q for q in range(2, p) if (p - 1) % q == 0 and all(q % r for r in range(2, int(q ** 0.5) + 1))}
    return next(g for g in range(1, p) if all(pow(g, (p - 1) // q, p) != 1 for q in factors)) if p > 2 else 1


def cube_root_of_unity(p: int) -> int | None:
    """A cube root of 1 mod p other than 1 (it exists iff p ≡ 1 mod 3), else None."""
    return pow(primitive_root(p), (p - 1) // 3, p) if p % 3 == 1 else None


def _scale(i, j, p):
    g = primitive_root(p)
    return g * i % p, pow(g, -1, p) * j % p


def _cube(a: int, b: int):
    """(ω^a i, ω^b j) for a cube root of unity ω; None where p has none."""
    def m(i, j, p):
        w = cube_root_of_unity(p)
        return None if w is None else (pow(w, a, p) * i % p, pow(w, b, p) * j % p)
    return m


# name -> (i, j, p) -> (i', j') on int64 tensors, or None where the map does not exist at this p.
MAPS = {
    "mirror": lambda i, j, p: (j, i),
    "negate": lambda i, j, p: ((-i) % p, (-j) % p),
    "negate i": lambda i, j, p: ((-i) % p, j),
    "reflect": lambda i, j, p: (i, (-i - j) % p),                  # (i, −i − j)
    "shift": lambda i, j, p: ((i + 1) % p, (j - 1) % p),           # (i + 1, j − 1)
    "shift both": lambda i, j, p: ((i + 1) % p, (j + 1) % p),      # (i + 1, j + 1)
    "anti-mirror": lambda i, j, p: ((-j) % p, (-i) % p),           # (−j, −i)
    "scale": _scale,                                               # (g i, j / g), g a primitive root
    "cube root i": _cube(1, 0),                                    # (ω i, j)
    "cube root pair": _cube(1, 2),                                 # (ω i, ω² j)
}

MAP_LABELS = {"mirror": "(j, i)", "negate": "(−i, −j)", "negate i": "(−i, j)", "reflect": "(i, −i−j)",
              "shift": "(i+1, j−1)", "shift both": "(i+1, j+1)", "anti-mirror": "(−j, −i)", "scale": "(g·i, j/g)",
              "cube root i": "(ω·i, j)", "cube root pair": "(ω·i, ω²·j)"}

# Each function's known symmetries, as generators of its group.
SYMMETRIES = {
    "add": ["mirror", "shift"],
    "subtract": ["anti-mirror", "shift both"],
    "mul": ["mirror", "negate", "scale"],
    "x2_y2": ["mirror", "negate i"],
    "x2_xy_y2": ["mirror", "negate", "reflect"],
    "x_plus_y_sq": ["mirror", "negate", "shift"],
    "x3_y3": ["mirror", "cube root i"],
    "x3_xy_y3": ["mirror", "cube root pair"],
}


def _pairs(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    i = torch.arange(p).repeat_interleave(p)
    return i, torch.arange(p).repeat(p)


@functools.lru_cache(maxsize=256)
def _permutation(name: str, p: int) -> np.ndarray | None:
    i, j = _pairs(p)
    out = MAPS[name](i, j, p)
    return None if out is None else (out[0] * p + out[1]).numpy()


def permutation(name: str, p: int) -> np.ndarray | None:
    """The map as an index array: pair i·p + j goes to the returned entry (None where it does not exist at p)."""
    perm = _permutation(name, p)
    return None if perm is None else perm.copy()


def holds(fn: str, name: str, p: int) -> bool:
    """Whether the map exists at p, is a bijection of the table, and keeps f(i, j) mod p on every pair."""
    perm = _permutation(name, p)
    if perm is None or len(np.unique(perm)) != p * p:
        return False
    y = labels(fn, p).numpy()
    return bool((y[perm] == y).all())


def group_maps(fn: str, p: int) -> list[str]:
    """The function's named maps that hold at p (checked on every pair)."""
    return [m for m in SYMMETRIES[fn] if holds(fn, m, p)]


def group_elements(perms: list[np.ndarray], limit: int = 10_000) -> list[np.ndarray]:
    """Every element of the group the permutations generate, the identity first (ValueError past `limit`)."""
    n = len(perms[0]) if perms else 0
    ident = np.arange(n)
    seen, todo, out = {ident.tobytes()}, [ident], [ident]
    while todo:
        g = todo.pop()
        for s in perms:
            h = s[g]
            if h.tobytes() not in seen:
                if len(out) >= limit:
                    raise ValueError(f"the group has more than {limit} elements")
                seen.add(h.tobytes())
                todo.append(h)
                out.append(h)
    return out


def affine(name: str, p: int) -> np.ndarray | None:
    """The map as a 3 × 3 matrix [[A, b], [0, 1]] mod p acting on (i, j, 1), read off its images of (0, 0), (1, 0)
    and (0, 1) and checked on every pair (ValueError if the map is not affine); None where it does not exist."""
    perm = _permutation(name, p)
    if perm is None:
        return None
    at = lambda i, j: np.array(divmod(int(perm[i * p + j]), p))
    b = at(0, 0)
    A = np.stack([(at(1, 0) - b) % p, (at(0, 1) - b) % p], axis=1)
    M = np.eye(3, dtype=np.int64)
    M[:2, :2], M[:2, 2] = A, b
    i, j = (t.numpy() for t in _pairs(p))
    if not (((A[0, 0] * i + A[0, 1] * j + b[0]) % p) * p + (A[1, 0] * i + A[1, 1] * j + b[1]) % p == perm).all():
        raise ValueError(f"the map {name!r} is not affine mod {p}")
    return M


def group_order(fn: str, p: int, limit: int = 100_000) -> int:
    """The order of the group that the function's maps holding at p generate, by closure of their affine
    matrices mod p (ValueError past `limit`)."""
    gens = [affine(m, p) for m in group_maps(fn, p)]
    ident = np.eye(3, dtype=np.int64)
    seen, todo = {ident.tobytes()}, [ident]
    while todo:
        g = todo.pop()
        for s in gens:
            h = s @ g % p
            if h.tobytes() not in seen:
                if len(seen) >= limit:
                    raise ValueError(f"the group has more than {limit} elements")
                seen.add(h.tobytes())
                todo.append(h)
    return len(seen)


def orbit_labels(perms: list[np.ndarray], n: int) -> np.ndarray:
    """Per pair index, the least index in its orbit under the group the permutations generate."""
    lab = np.arange(n)
    while True:
        new = lab.copy()
        for s in perms:
            np.minimum.at(new, s, lab)     # a pair's label reaches its image ...
            new = np.minimum(new, new[s])  # ... and its image's label comes back
        if (new == lab).all():
            return lab
        lab = new


@functools.lru_cache(maxsize=64)
def _orbits(fn: str, p: int) -> np.ndarray:
    return orbit_labels([_permutation(m, p) for m in group_maps(fn, p)], p * p)


def orbits(fn: str, p: int) -> np.ndarray:
    """Per pair, its orbit's label under the function's group at p (see orbit_labels)."""
    return _orbits(fn, p).copy()


def orbits_are_classes(fn: str, p: int) -> float:
    """The share of pairs whose orbit under the function's group is its whole class (all pairs of equal f)."""
    lab, y = _orbits(fn, p), labels(fn, p).numpy()
    orbit_size = np.bincount(lab, minlength=p * p)[lab]
    class_size = np.bincount(y, minlength=p)[y]
    return float((orbit_size == class_size).mean())


def linear_symmetries(fn: str, p: int) -> list[np.ndarray]:
    """Every invertible 2 × 2 matrix M mod p with f(M (i, j)) = f(i, j) on every pair, found by search: M's
    columns must keep f at (1, 0) and (0, 1), and each candidate is then checked on the whole table."""
    y = labels(fn, p).numpy().reshape(p, p)
    cols_a = np.argwhere(y == y[1, 0])          # (a, c): f(a, c) = f(1, 0)
    cols_b = np.argwhere(y == y[0, 1])          # (b, d)
    i, j = (t.numpy() for t in _pairs(p))
    probe = np.random.default_rng(0).choice(p * p, size=min(p * p, 64), replace=False)
    out = []
    for a, c in cols_a:
        b, d = cols_b[:, 0], cols_b[:, 1]
        ok = (a * d - b * c) % p != 0
        for k in probe:                          # a cheap filter on a few pairs first
            ok &= y[(a * i[k] + b * j[k]) % p, (c * i[k] + d * j[k]) % p] == y[i[k], j[k]]
        for bb, dd in zip(b[ok], d[ok]):
            if (y[(a * i + bb * j) % p, (c * i + dd * j) % p] == y[i, j]).all():
                out.append(np.array([[a, bb], [c, dd]]))
    return out


def matrix_permutation(M: np.ndarray, p: int) -> np.ndarray:
    """The linear map (i, j) -> M (i, j) mod p as an index array (see permutation)."""
    i, j = (t.numpy() for t in _pairs(p))
    return ((M[0, 0] * i + M[0, 1] * j) % p) * p + (M[1, 0] * i + M[1, 1] * j) % p


@functools.lru_cache(maxsize=64)
def _full_orbits(fn: str, p: int) -> np.ndarray:
    if orbits_are_classes(fn, p) == 1.0:       # the named maps reach whole classes: nothing is left to find
        return _orbits(fn, p)
    perms = [_permutation(m, p) for m in group_maps(fn, p)] + [matrix_permutation(M, p) for M in linear_symmetries(fn, p)]
    return orbit_labels(perms, p * p)


def full_orbits(fn: str, p: int) -> np.ndarray:
    """Per pair, its orbit's label under the named maps and every linear symmetry mod p together: what symmetry
    reaches in principle. Where the named maps' orbits are already the classes, the search is skipped."""
    return _full_orbits(fn, p).copy()


def full_orbits_are_classes(fn: str, p: int) -> float:
    """The share of pairs whose full orbit (full_orbits) is their whole class."""
    lab, y = _full_orbits(fn, p), labels(fn, p).numpy()
    return float((np.bincount(lab, minlength=p * p)[lab] == np.bincount(y, minlength=p)[y]).mean())


# -- what a split's train set reaches -------------------------------------------------------------------
def mapped_share(train_mask, test_idx, perm: np.ndarray) -> float:
    """The share of the test pairs whose image under the permutation is a training pair."""
    train, test = np.asarray(train_mask, dtype=bool), np.asarray(test_idx)
    return float(train[perm[test]].mean()) if len(test) else float("nan")


def orbit_share(train_mask, test_idx, labels_: np.ndarray) -> float:
    """The share of the test pairs whose orbit (per-pair labels) holds a training pair."""
    train, test = np.asarray(train_mask, dtype=bool), np.asarray(test_idx)
    reached = np.zeros(len(labels_), dtype=bool)
    reached[labels_[train]] = True
    return float(reached[labels_[test]].mean()) if len(test) else float("nan")


def mirrored_share(cfg) -> float:
    """The share of the split's test pairs (i, j) whose mirror (j, i) is a training pair: what a model that has
    learned only f(i, j) = f(j, i) answers."""
    from .chapters.runs import quiet_split
    sp, p = quiet_split(cfg), cfg.p
    mirror = (sp.test_idx % p) * p + sp.test_idx // p
    return float(sp.train_mask[mirror].float().mean())      # float32, as Fig. 4's chapter has always exported it


def split_shares(cfg) -> dict:
    """What the symmetries of cfg's function reach from its split's train set: per map that holds, the share
    of test pairs it sends onto a training pair (None for a map that is not a symmetry at this p); the share
    whose orbit under their group holds a training pair, and the same with every linear symmetry mod p added
    (full_orbits); and the shares of pairs whose orbit, or full orbit, is their class."""
    from .chapters.runs import quiet_split
    sp, p, fn = quiet_split(cfg), cfg.p, cfg.fn
    train, test = sp.train_mask.numpy(), sp.test_idx.numpy()
    maps = group_maps(fn, p)
    return {"maps": {m: mapped_share(train, test, _permutation(m, p)) if m in maps else None for m in SYMMETRIES[fn]},
            "mirror": mapped_share(train, test, _permutation("mirror", p)) if "mirror" in maps else None,
            "orbit": orbit_share(train, test, _orbits(fn, p)), "orbits_are_classes": orbits_are_classes(fn, p),
            "full_orbit": orbit_share(train, test, _full_orbits(fn, p)),
            "full_orbits_are_classes": full_orbits_are_classes(fn, p)}
