"""The run store: finished runs keyed by their config hash, written atomically, verified on read.

Layout under the results root (GROKBOOK_RESULTS, default <repo>/results):
  runs/<key>/history.npz   every recorded step, compressed float32 arrays
  runs/<key>/weights.pt    final flat parameters (optional)
  runs/<key>/meta.json     config, key, file checksums, code commit, device, torch version, wall time
  checkpoints/<batch>.pt   in-progress batches (resumable)
An entry becomes visible by one directory rename, so a crash never leaves a half entry behind;
an entry whose files do not match their recorded checksums is moved aside and recomputed.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import SEMANTICS_VERSION, RunConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_VAR = "GROKBOOK_RESULTS"


def results_root() -> Path:
    return Path(os.environ.get(ENV_VAR) or REPO_ROOT / "results")


def code_commit() -> str:
    """The checkout's commit; GROKBOOK_CODE_COMMIT names it where the code was copied without .git."""
    if os.environ.get("GROKBOOK_CODE_COMMIT"):
        return os.environ["GROKBOOK_CODE_COMMIT"]
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def sha256_file(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary sibling path to write; on success it is renamed over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(final: Path):
    """Yield a temporary sibling folder to fill; on success its files are fsynced and it replaces final
    by one rename (an older final is moved aside first and removed after), so readers never see half."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}-{time.monotonic_ns()}")
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            old = final.with_name(f".old-{final.name}-{time.monotonic_ns()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Run:
    config: RunConfig          # or another config class with key() / to_dict() / from_dict()
    history: dict[str, np.ndarray]
    meta: dict

    @property
    def key(self) -> str:
        return self.config.key()


class CorruptEntry(Exception):
    pass


class RunStore:
    """Entries of one config class (RunConfig by default) in <root>/<runs_subdir>/<key>/."""

    def __init__(self, root: str | Path | None = None, config_cls=RunConfig, runs_subdir: str = "runs"):
        self.root = Path(root) if root is not None else results_root()
        self.config_cls = config_cls
        self.runs_dir = self.root / runs_subdir
        self.ckpt_dir = self.root / "checkpoints"

    def entry(self, key: str) -> Path:
        return self.runs_dir / key

    def checkpoint_path(self, configs: list[RunConfig]) -> Path:
        keys = "\n".join(c.key() for c in configs)
        return self.ckpt_dir / (hashlib.sha256(keys.encode()).hexdigest()[:16] + ".pt")

    # -- reading --------------------------------------------------------------------------------------
    def _read(self, key: str) -> Run:
        d = self.entry(key)
        try:
            meta = json.loads((d / "meta.json").read_text())
            for name, digest in meta["files"].items():
                if sha256_file(d / name) != digest:
                    raise CorruptEntry(f"{name} does not match its checksum")
            cfg = self.config_cls.from_dict(meta["config"])
            if cfg.key() != key or meta.get("key") != key:
                raise CorruptEntry("stored config does not hash to the entry's key")
            with np.load(d / "history.npz") as z:
                history = {k: z[k] for k in z.files}
        except CorruptEntry:
            raise
        except Exception as err:  # missing file, bad JSON, truncated npz, ...
            raise CorruptEntry(f"{type(err).__name__}: {err}") from err
        return Run(cfg, history, meta)

    def get(self, cfg: RunConfig) -> Run | None:
        """The stored run for cfg, or None. A damaged entry is quarantined (renamed) and None returned."""
        key = cfg.key()
        if not self.entry(key).exists():
            return None
        try:
            return self._read(key)
        except CorruptEntry as err:
            bad = self.entry(key).with_name(f"{key}.corrupt-{int(time.time())}")
            os.replace(self.entry(key), bad)
            warnings.warn(f"run store entry {key} is damaged ({err}); moved to {bad.name}, it will be recomputed")
            return None

    def weights(self, cfg: RunConfig) -> torch.Tensor | None:
        path = self.entry(cfg.key()) / "weights.pt"
        run = self.get(cfg)
        if run is None or "weights.pt" not in run.meta["files"]:
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    def list(self) -> list[dict]:
        """meta.json of every readable entry."""
        out = []
        for d in sorted(self.runs_dir.glob("*/meta.json")) if self.runs_dir.exists() else []:
            try:
                out.append(json.loads(d.read_text()))
            except (OSError, ValueError):
                continue
        return out

    # -- writing --------------------------------------------------------------------------------------
    def put(self, cfg: RunConfig, history: dict[str, np.ndarray], meta: dict | None = None,
            weights: torch.Tensor | None = None) -> Run:
        key = cfg.key()
        with atomic_dir(self.entry(key)) as tmp:
            buf = io.BytesIO()
            np.savez_compressed(buf, **{k: np.asarray(v) for k, v in history.items()})
            (tmp / "history.npz").write_bytes(buf.getvalue())
            files = ["history.npz"]
            if weights is not None:
                torch.save(weights.detach().cpu().clone(), tmp / "weights.pt")
                files.append("weights.pt")
            full_meta = {"key": key, "semantics": SEMANTICS_VERSION, "config": cfg.to_dict(),
                         "files": {f: sha256_file(tmp / f) for f in files}, **(meta or {})}
            (tmp / "meta.json").write_text(json.dumps(full_meta, indent=1, sort_keys=True))
        return Run(cfg, {k: np.asarray(v) for k, v in history.items()}, full_meta)
