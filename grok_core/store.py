"""The run store: finished runs keyed by their config hash, written atomically, verified on read; and checkpoints.

Layout under the results root (GROKBOOK_RESULTS, default <repo>/results):
  runs/<key>/history.npz   every recorded step, compressed float32 arrays
  runs/<key>/weights.pt    final flat parameters (optional)
  runs/<key>/snapshots.pt  {'step': [k], 'weights': [k, n_params]} at the config's snapshot steps (optional)
  runs/<key>/meta.json     config, key, file checksums, code commit, device, torch version, wall time
  checkpoints/<batch>.pt   batches in progress (resumable), sealed with a sha256 of their bytes
An entry is filled in a temporary folder and appears by one rename, which fails if the entry is there:
a crash never leaves half an entry, an entry never changes once it is there, and of two writers of one
key the first wins (the other returns its entry). A reader that finds an entry damaged twice, unchanged
in between, moves it aside (<key>.corrupt-...) and the run is recomputed. A checkpoint that fails its
seal, or does not fit its batch (Trainer.resume), is moved aside too (<batch>.pt.unusable-...).
Leftovers: temporary items whose writer has ended, entries and checkpoints moved aside, unreadable
checkpoints and checkpoints whose runs are all stored; `grok list --all` shows them, `grok gc` removes them.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import secrets
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
KEY = re.compile(r"[0-9a-f]{16}")
# temporary names carry their writer's pid: .tmp-<name>-<pid>-<ns>, .old-<name>-<pid>-<ns> (atomic_dir, put)
# and .<name>.<pid>.tmp (atomic_file)
TEMP_NAME = re.compile(r"\.(?:tmp|old)-.+-(\d+)-\d+|\..+\.(\d+)\.tmp")
# a checkpoint ends with this line and the sha256 (hex) of all bytes before it; torch.load ignores it
SEAL = b"\ngrokbook checkpoint v2 sha256 "
SEAL_LEN = len(SEAL) + 64 + 1


def results_root() -> Path:
    return Path(os.environ.get(ENV_VAR) or REPO_ROOT / "results")


@contextlib.contextmanager
def results_at(root: str | Path):
    """Within the block, results_root() is root: for code that reads the default store (a chapter whose later
    runs follow from its stored earlier ones) while another store is being listed."""
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(root)
    try:
        yield
    finally:
        if before is None:
            del os.environ[ENV_VAR]
        else:
            os.environ[ENV_VAR] = before


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


def _first_line(err: BaseException) -> str:
    """An exception as one line (torch's load errors run to many)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


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
        _fsync_files(tmp)
        if final.exists():
            old = final.with_name(f".old-{final.name}-{os.getpid()}-{time.monotonic_ns()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _fsync_files(folder: Path):
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def move_aside(path: Path, tag: str, inode: int | None = None) -> Path | None:
    """Rename path to a new sibling <name>.<tag>-<time>-<pid>-<random> and return that. With inode, only the
    item that was read moves: if a writer replaced it meanwhile, the newer one goes back and None is returned
    (None too if someone else moved it first)."""
    aside = path.with_name(f"{path.name}.{tag}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    if inode is None or aside.stat().st_ino == inode:
        return aside
    try:                       # never over a newer item: a folder renames only onto nothing, a file links
        if aside.is_dir():
            os.rename(aside, path)
        else:
            os.link(aside, path)
            aside.unlink()
    except OSError:
        pass                   # a third writer filled path meanwhile; the copy aside is a leftover
    return None


def _writer_gone(path: Path) -> bool:
    """Whether the process writing a temporary item (its pid is in the name) has ended; an item whose
    writer cannot be told (no pid in the name, or no signal-0 probe on this system) once it is a day old."""
    m = TEMP_NAME.fullmatch(path.name)
    if m and os.name == "posix":
        try:
            os.kill(int(m.group(1) or m.group(2)), 0)
        except ProcessLookupError:
            return True
        except PermissionError:            # alive, another user's
            return False
        except OverflowError:
            pass
        else:
            return False
    return time.time() - path.lstat().st_mtime > 86400


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(f.lstat().st_size for f in path.rglob("*") if not f.is_dir())
    return path.lstat().st_size


# -- checkpoints --------------------------------------------------------------------------------------------
class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, cut short, or of another format; inode: the file read."""

    def __init__(self, reason: str, inode: int | None = None):
        super().__init__(reason)
        self.inode = inode


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by SIGINT or SIGTERM; str() is the one line to show: the step, the checkpoint, what next."""

    def __init__(self, signum: int, step: int, n_steps: int, checkpoint: Path | None):
        self.signum, self.step, self.n_steps, self.checkpoint = signum, step, n_steps, checkpoint
        then = (f"checkpoint written to {checkpoint}; run the same command again to resume from there"
                if checkpoint is not None else
                "no checkpoint written at this step; running the same command again resumes from the last one, if any")
        super().__init__(f"interrupted at step {step} of {n_steps}; {then}")


def seal_checkpoint(path: Path):
    """Append the sha256 of the file's bytes, so that any damage to any byte is found on reading; then fsync."""
    digest = sha256_file(path).encode()
    with open(path, "ab") as fh:
        fh.write(SEAL + digest + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def checkpoint_write_error(err: OSError, path: str | Path) -> OSError:
    """A full disk as one plain line naming the checkpoint and the free space; other errors as they are."""
    if err.errno != errno.ENOSPC:
        return err
    try:
        free = f"{shutil.disk_usage(Path(path).parent).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return OSError(errno.ENOSPC, f"no space left on the device for checkpoint {path} ({free}); "
                                 "the previous checkpoint is kept")


def save_checkpoint(path: str | Path, state: dict):
    """Atomic (a temporary file renamed over the old checkpoint) and sealed with a sha256 of its bytes;
    a full disk raises one plain OSError and leaves the previous checkpoint as it was."""
    try:
        with atomic_file(path) as tmp:
            torch.save(state, tmp)
            seal_checkpoint(tmp)
    except OSError as err:
        raise checkpoint_write_error(err, path) from None


def resume_checkpoint(path: str | Path, load, start: str, misfit: tuple = (ValueError,)) -> bool:
    """Hand the checkpoint at path to load(state) if there is one and its bytes match their seal (True).
    One that is damaged, or whose load raises one of `misfit`, is moved aside with a warning naming it and
    why, and training starts at `start` (False); a checkpoint replaced meanwhile is read again."""
    path = Path(path)
    try:
        state, inode = read_checkpoint(path)
    except FileNotFoundError:
        return False
    except CheckpointError as err:
        problem, inode = f"unreadable checkpoint {path}: {err}", err.inode
    else:
        try:
            load(state)
            return True
        except misfit as err:
            problem = f"unusable checkpoint {path}: {err}"
    aside = move_aside(path, "unusable", inode)
    if aside is None and path.exists():
        return resume_checkpoint(path, load, start, misfit)
    where = f"moved to {aside.name}" if aside else "someone else moved it"
    warnings.warn(f"{problem}; {where}, training starts again from {start}")
    return False


def read_checkpoint(path: str | Path) -> tuple[dict, int]:
    """(state, inode) of a checkpoint whose bytes match their seal; CheckpointError otherwise (old-format
    checkpoints have no seal). The state is loaded from the bytes checked, not from the file again."""
    with open(path, "rb") as fh:
        inode = os.fstat(fh.fileno()).st_ino
        data = fh.read()
    body = memoryview(data)[:-SEAL_LEN]
    if len(data) <= SEAL_LEN or not data[-SEAL_LEN:].startswith(SEAL):
        raise CheckpointError("it carries no checksum (cut short, or written by older code)", inode)
    if data[-SEAL_LEN:] != SEAL + hashlib.sha256(body).hexdigest().encode() + b"\n":
        raise CheckpointError("its bytes do not match their sha256 (the file is damaged)", inode)
    try:
        state = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"torch cannot load it ({_first_line(err)})", inode) from err
    if not isinstance(state, dict):
        raise CheckpointError(f"it holds a {type(state).__name__}, not a training state", inode)
    return state, inode


@dataclass
class Checkpoint:
    """A batch checkpoint found in the store: its runs and step when sound, else error says why not."""
    path: Path
    configs: list | None = None
    step: int | None = None
    error: str | None = None


@dataclass
class Leftover:
    """Something `grok gc` removes: what it is, and its size in bytes."""
    path: Path
    what: str
    size: int


# -- runs -----------------------------------------------------------------------------------------------------
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


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


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

    def check_writable(self):
        """Before training: the runs and checkpoint folders can be made and written in, else one plain OSError
        (a read-only store would otherwise be found only when the first batch is done)."""
        for d in (self.runs_dir, self.ckpt_dir):
            probe = d / f".tmp-probe-{os.getpid()}-{time.monotonic_ns()}"
            try:
                d.mkdir(parents=True, exist_ok=True)
                os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os.unlink(probe)
            except OSError as err:
                raise OSError(err.errno, f"the run store at {self.root} is not writable ({d}: "
                                         f"{err.strerror or err}); nothing was trained") from None

    # -- reading --------------------------------------------------------------------------------------
    def _meta(self, key: str) -> tuple[dict, RunConfig]:
        """Entry key's meta.json and config, checked: a mapping with file checksums whose config hashes to key."""
        try:
            meta = json.loads((self.entry(key) / "meta.json").read_text())
            if not isinstance(meta, dict):
                raise CorruptEntry(f"meta.json holds a {type(meta).__name__}, not a mapping")
            if not isinstance(meta.get("config"), dict):
                raise CorruptEntry("meta.json has no config")
            if not isinstance(meta.get("files"), dict) or "history.npz" not in meta["files"]:
                raise CorruptEntry("meta.json has no checksum of history.npz")
            cfg = self.config_cls.from_dict(meta["config"])
        except CorruptEntry:
            raise
        except Exception as err:  # missing file, bad JSON, a config this code rejects, ...
            raise CorruptEntry(_first_line(err)) from err
        if cfg.key() != key or meta.get("key") != key:
            raise CorruptEntry("stored config does not hash to the entry's key")
        return meta, cfg

    def _read(self, key: str, tensors: str | None = None) -> tuple[Run, object]:
        """The entry, every file checked against its checksum (and read from the bytes checked), and the
        torch file named `tensors` in it (None if it holds none)."""
        d = self.entry(key)
        meta, cfg = self._meta(key)
        try:
            blobs = {}
            for name, digest in meta["files"].items():
                blobs[name] = (d / name).read_bytes()
                if hashlib.sha256(blobs[name]).hexdigest() != digest:
                    raise CorruptEntry(f"{name} does not match its checksum")
            with np.load(io.BytesIO(blobs["history.npz"])) as z:
                history = {k: z[k] for k in z.files}
            weights = None
            if tensors in blobs:
                weights = torch.load(io.BytesIO(blobs[tensors]), map_location="cpu", weights_only=True)
        except CorruptEntry:
            raise
        except Exception as err:  # missing file, truncated npz, ...
            raise CorruptEntry(_first_line(err)) from err
        return Run(cfg, history, meta), weights

    def _get(self, cfg: RunConfig, tensors: str | None = None) -> tuple[Run, object] | None:
        """Read cfg's entry. Damage counts only when two reads find it in the same folder (by inode): a folder
        replaced meanwhile is read again, so an entry that is being replaced is never taken for a damaged one."""
        key = cfg.key()
        d = self.entry(key)
        damaged_at = None
        for _ in range(4):
            inode = _inode(d)
            if inode is None:
                return None
            try:
                return self._read(key, tensors)
            except CorruptEntry as err:
                if damaged_at == inode == _inode(d):
                    bad = move_aside(d, "corrupt", inode)
                    if bad is not None:
                        warnings.warn(f"run store entry {key} is damaged ({err}); moved to {bad.name}, "
                                      "it will be recomputed")
                        return None
                damaged_at = inode
        return None

    def config_of(self, key: str) -> RunConfig:
        """The config of the stored entry `key` (its meta checked); LookupError when there is no sound entry."""
        if not KEY.fullmatch(key) or not self.entry(key).is_dir():
            raise LookupError(f"no run {key!r} in the store at {self.root}")
        try:
            return self._meta(key)[1]
        except CorruptEntry as err:
            raise LookupError(f"run {key} in the store at {self.root} is damaged ({err})") from None

    def get(self, cfg: RunConfig) -> Run | None:
        """The stored run for cfg, or None. A damaged entry is quarantined (renamed) and None returned."""
        got = self._get(cfg)
        return None if got is None else got[0]

    def weights(self, cfg: RunConfig) -> torch.Tensor | None:
        """The final flat parameters stored with cfg's run; None when it is not stored, or stored without them."""
        got = self._get(cfg, "weights.pt")
        return None if got is None else got[1]

    def snapshots(self, cfg: RunConfig) -> dict | None:
        """{'step': int32 [k], 'weights': [k, n_params]} stored with cfg's run (RunConfig.snapshots); None
        when it is not stored or keeps none."""
        got = self._get(cfg, "snapshots.pt")
        return None if got is None else got[1]

    def _scan(self) -> tuple[list[dict], list[tuple[str, str]]]:
        """(meta of every entry whose meta.json is sound, (key, reason) of every entry folder whose is not)."""
        good, bad = [], []
        for d in sorted(self.runs_dir.iterdir()) if self.runs_dir.is_dir() else []:
            if not (KEY.fullmatch(d.name) and d.is_dir()):
                continue                       # temporary folders, entries moved aside
            try:
                good.append(self._meta(d.name)[0])
            except CorruptEntry as err:
                if d.exists():                 # (not moved aside meanwhile)
                    bad.append((d.name, str(err)))
        return good, bad

    def list(self) -> list[dict]:
        """meta.json of every entry whose meta is sound (files are checked when an entry is read)."""
        return self._scan()[0]

    def damaged(self) -> list[tuple[str, str]]:
        """(key, reason) of every entry folder whose meta.json is unusable; get() moves one aside when asked for it."""
        return self._scan()[1]

    def _stored(self, key: str) -> bool:
        try:
            self._read(key)
        except CorruptEntry:
            return False
        return True

    def checkpoints(self) -> list[Checkpoint]:
        """Every batch checkpoint here (<16 hex>.pt), checked: its bytes match their seal, its configs hash to its
        keys and to its name, its step lies in 0..n_steps. (Whether its tensors fit is Trainer.resume's check.)"""
        out = []
        for path in sorted(self.ckpt_dir.glob("*.pt")) if self.ckpt_dir.is_dir() else []:
            if not KEY.fullmatch(path.stem):
                continue                       # another kind's (resnet-<key>.pt)
            try:
                state, _ = read_checkpoint(path)
                configs = [self.config_cls.from_dict(c) for c in state["configs"]]
                if [c.key() for c in configs] != state["keys"] or self.checkpoint_path(configs) != path:
                    raise CheckpointError("its configs do not hash to its keys and file name")
                if not 0 <= state["step"] <= configs[0].n_steps:
                    raise CheckpointError(f"its step {state['step']} lies outside 0..{configs[0].n_steps}")
                out.append(Checkpoint(path, configs, state["step"]))
            except FileNotFoundError:
                continue                       # removed meanwhile
            except CheckpointError as err:
                out.append(Checkpoint(path, error=str(err)))
            except Exception as err:           # a state of another layout
                out.append(Checkpoint(path, error=_first_line(err)))
        return out

    def leftovers(self) -> list[Leftover]:
        """What gc may remove: temporary items whose writer has ended, entries and checkpoints moved aside,
        unreadable checkpoints and checkpoints whose runs are all stored (one of an unfinished batch stays)."""
        out = []
        for folder in (self.runs_dir, self.ckpt_dir):
            for p in sorted(folder.iterdir()) if folder.is_dir() else []:
                if TEMP_NAME.fullmatch(p.name) and _writer_gone(p):
                    out.append(Leftover(p, "temporary, its writer has ended", _size(p)))
                elif folder == self.runs_dir and re.fullmatch(r"[0-9a-f]{16}\.corrupt-.+", p.name):
                    out.append(Leftover(p, "damaged entry, moved aside", _size(p)))
                elif folder == self.ckpt_dir and re.fullmatch(r"(resnet-)?[0-9a-f]{16}\.pt\.unusable-.+", p.name):
                    out.append(Leftover(p, "unusable checkpoint, moved aside", _size(p)))
        for ck in self.checkpoints():
            if ck.error is not None:
                out.append(Leftover(ck.path, f"unreadable checkpoint: {ck.error}", _size(ck.path)))
            elif all(self._stored(c.key()) for c in ck.configs):
                out.append(Leftover(ck.path, "checkpoint whose runs are all stored", _size(ck.path)))
        return out

    def remove(self, item: Leftover):
        if item.path.is_dir() and not item.path.is_symlink():
            shutil.rmtree(item.path)
        else:
            item.path.unlink(missing_ok=True)

    # -- writing --------------------------------------------------------------------------------------
    def put(self, cfg: RunConfig, history: dict[str, np.ndarray], meta: dict | None = None,
            weights: torch.Tensor | None = None, snapshots: dict | None = None) -> Run:
        """Store a run; return the entry. The filled folder is renamed onto the entry's name, which fails if it
        is there: of writers of one key the first wins and the others return its entry (a damaged one is moved
        aside and replaced)."""
        key = cfg.key()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.runs_dir / f".tmp-{key}-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir()
        try:
            buf = io.BytesIO()
            np.savez_compressed(buf, **{k: np.asarray(v) for k, v in history.items()})
            (tmp / "history.npz").write_bytes(buf.getvalue())
            files = ["history.npz"]
            if weights is not None:
                torch.save(weights.detach().cpu().clone(), tmp / "weights.pt")
                files.append("weights.pt")
            if snapshots is not None:
                torch.save({k: v.detach().cpu().clone() for k, v in snapshots.items()}, tmp / "snapshots.pt")
                files.append("snapshots.pt")
            full_meta = {"key": key, "semantics": SEMANTICS_VERSION, "config": cfg.to_dict(),
                         "files": {f: sha256_file(tmp / f) for f in files}, **(meta or {})}
            (tmp / "meta.json").write_text(json.dumps(full_meta, indent=1, sort_keys=True))
            _fsync_files(tmp)
            while True:
                try:
                    os.rename(tmp, self.entry(key))
                    return Run(cfg, {k: np.asarray(v) for k, v in history.items()}, full_meta)
                except OSError as err:
                    if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                stored = self.get(cfg)
                if stored is not None:
                    return stored
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
