"""`grok list`, `show` and `gc` on a store with damaged entries and leftovers; a full disk in one line;
Ctrl-C and SIGTERM during `grok run`: one line, a checkpoint at that step, and a rerun that resumes from it."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from grok_core.cli import main
from grok_core.config import RunConfig
from grok_core.runner import load_or_train
from grok_core.store import RunStore
from grok_core.train import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = dict(p=7, d_model=8, n_heads=2, d_mlp=16, frac_train=0.5, n_steps=5)


def table_keys(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines() if re.match(r"[0-9a-f]{16}\s", line)]


def test_list_and_show_after_a_quarantine(tmp_path, capsys):
    store = RunStore(tmp_path)
    cfgs = [RunConfig(**TINY, init_seed=s) for s in range(2)]
    load_or_train(cfgs, store=store, progress=False)
    (store.entry(cfgs[0].key()) / "history.npz").write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="damaged"):
        load_or_train(cfgs, store=store, progress=False)          # moved aside and trained again
    capsys.readouterr()
    assert main(["--results", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert sorted(table_keys(out)) == sorted(c.key() for c in cfgs) and "2 run(s)" in out
    assert main(["--results", str(tmp_path), "show", cfgs[0].key()]) == 0
    assert json.loads(capsys.readouterr().out)["meta"]["key"] == cfgs[0].key()


def test_damaged_metas_are_reported_not_fatal(tmp_path, capsys):
    store = RunStore(tmp_path)
    [cfg] = [RunConfig(**TINY)]
    store.put(cfg, {"step": np.arange(5, dtype=np.int32), "train_acc": np.ones(5, np.float32),
                    "test_acc": np.ones(5, np.float32)})
    for key, meta in (("0123456789abcdef", "[1, 2]"), ("fedcba9876543210", json.dumps({"key": "fedcba9876543210"}))):
        (store.runs_dir / key).mkdir()
        (store.runs_dir / key / "meta.json").write_text(meta)
    assert main(["--results", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert table_keys(out) == [cfg.key()] and "1 run(s)" in out
    assert "damaged entry 0123456789abcdef: meta.json holds a list, not a mapping" in out
    assert "damaged entry fedcba9876543210: meta.json has no config" in out
    assert main(["--results", str(tmp_path), "show", "fedcba"]) == 1
    assert capsys.readouterr().err == "run fedcba9876543210 is damaged: meta.json has no config\n"


def ended_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_list_all_shows_and_gc_removes_only_leftovers(tmp_path, capsys):
    store = RunStore(tmp_path)
    cfgs = [RunConfig(**TINY, init_seed=s) for s in range(3)]
    load_or_train(cfgs[:2], store=store, progress=False)
    dead, runs, ckpts = ended_pid(), store.runs_dir, store.ckpt_dir
    (store.entry(cfgs[1].key()) / "history.npz").write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="damaged"):
        assert store.get(cfgs[1]) is None
    load_or_train(cfgs[:2], store=store, progress=False)
    [quarantined] = runs.glob(f"{cfgs[1].key()}.corrupt-*")
    Trainer(cfgs[:2], "cpu").run(ckpt_path=store.checkpoint_path(cfgs[:2]), stop_at=3, progress=False)
    Trainer(cfgs[2:], "cpu").run(ckpt_path=store.checkpoint_path(cfgs[2:]), stop_at=3, progress=False)
    garbage = {quarantined, runs / f".tmp-{cfgs[0].key()}-{dead}-1", runs / f".old-{cfgs[0].key()}-{dead}-2",
               ckpts / f".{store.checkpoint_path(cfgs[2:]).name}.{dead}.tmp", ckpts / "0123456789abcdef.pt",
               ckpts / "0123456789abcdef.pt.unusable-20250101T000000-1-abcdef",
               ckpts / "resnet-0123456789abcdef.pt.unusable-20250101T000000-1-abcdef",
               store.checkpoint_path(cfgs[:2])}                          # its runs are all stored
    kept = {runs / f".tmp-{cfgs[0].key()}-{os.getpid()}-3",             # a writer still at work
            store.checkpoint_path(cfgs[2:]),                             # an unfinished batch
            ckpts / "resnet-0123456789abcdef.pt"}                        # another kind's
    for p in (garbage | kept) - {quarantined, *store.ckpt_dir.glob("*.pt")}:
        if p.name.startswith(".tmp-") or p.name.startswith(".old-"):
            p.mkdir()
            (p / "history.npz").write_bytes(b"x" * 10)
        else:
            p.write_bytes(b"junk")
    root = str(tmp_path)
    capsys.readouterr()
    assert main(["--results", root, "gc"]) == 0
    out = capsys.readouterr().out
    assert {Path(m) for m in re.findall(r"^would remove (\S+) \(", out, re.M)} == garbage
    assert re.search(r"^8 item\(s\), \d+ bytes; grok gc --yes removes them$", out, re.M)
    assert all(p.exists() for p in garbage | kept)
    assert main(["--results", root, "list", "--all"]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint {store.checkpoint_path(cfgs[2:])}: 1 run(s) at step 3 of 5" in out
    assert {Path(m) for m in re.findall(r"^leftover (\S+): ", out, re.M)} == garbage
    assert "unreadable checkpoint: it carries no checksum" in out and "8 leftover(s)" in out
    assert main(["--results", root, "gc", "--yes"]) == 0
    assert len(re.findall(r"^removed ", capsys.readouterr().out, re.M)) == 9       # 8 items and the total
    assert not any(p.exists() for p in garbage) and all(p.exists() for p in kept)
    assert main(["--results", root, "gc"]) == 0
    assert capsys.readouterr().out == f"nothing to remove in {root}\n"
    assert all(store.get(c) is not None for c in cfgs[:2])


def test_a_full_disk_while_checkpointing_is_one_line(tmp_path, capsys, monkeypatch):
    save, calls = torch.save, []

    def first_then_full(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(*args, **kwargs)
    monkeypatch.setattr(torch, "save", first_then_full)
    sets = [a for k, v in (TINY | {"n_steps": 9}).items() for a in ("--set", f"{k}={v}")]
    args = ["--results", str(tmp_path), "run", "--device", "cpu", "--ckpt-every", "3"] + sets
    assert main(args) == 2
    err = capsys.readouterr().err
    ckpt = RunStore(tmp_path).checkpoint_path([RunConfig(**(TINY | {"n_steps": 9}))])
    assert err == (f"grok: error: [Errno 28] no space left on the device for checkpoint {ckpt} "
                   f"({err.split('(')[1].split(')')[0]}); the previous checkpoint is kept\n")
    monkeypatch.undo()
    assert main(args) == 0 and "resuming 1 run(s) at step 3 of 9" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_and_sigterm_checkpoint_say_so_in_one_line_and_the_rerun_resumes(tmp_path):
    sets = ["p=7", "d_model=8", "n_heads=2", "d_mlp=16", "frac_train=0.5", "n_steps=300"]

    def grok(root):
        return [sys.executable, "-m", "grok_core", "--results", str(root), "run", "--ckpt-every", "20",
                "--device", "cpu"] + [x for s in sets for x in ("--set", s)]
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    ckpts = tmp_path / "a" / "checkpoints"

    def interrupt(sig, after_ns: int) -> tuple[int, str]:
        """Start grok, send sig once a checkpoint newer than after_ns is there; (step, its one line)."""
        proc = subprocess.Popen(grok(tmp_path / "a"), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while not any(p.stat().st_mtime_ns > after_ns for p in ckpts.glob("*.pt")) if ckpts.exists() else True:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, err.decode()
        *before, line = err.decode().splitlines()
        assert all(b.startswith("resuming 1 run(s) at step ") for b in before) and len(before) <= 1, err.decode()
        m = re.fullmatch(r"grok: interrupted at step (\d+) of 300; checkpoint written to (\S+\.pt); "
                         r"run the same command again to resume from there", line)
        assert m, line
        assert torch.load(m[2], weights_only=True)["step"] == int(m[1])
        return int(m[1]), line

    first, _ = interrupt(signal.SIGINT, 0)
    [ck] = ckpts.glob("*.pt")
    second, _ = interrupt(signal.SIGTERM, ck.stat().st_mtime_ns)
    assert 0 < first < second < 300
    done = subprocess.run(grok(tmp_path / "a"), cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and f"resuming 1 run(s) at step {second} of 300" in done.stderr
    assert subprocess.run(grok(tmp_path / "b"), cwd=REPO, env=env, capture_output=True).returncode == 0
    cfg = RunConfig.from_dict({k: int(v) if v.isdigit() else float(v) for k, v in (s.split("=") for s in sets)})
    resumed, fresh = RunStore(tmp_path / "a").get(cfg), RunStore(tmp_path / "b").get(cfg)
    assert not any(ckpts.glob("*.pt"))
    for k, v in fresh.history.items():
        np.testing.assert_array_equal(resumed.history[k], v, err_msg=k)
