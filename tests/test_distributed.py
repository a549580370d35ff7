"""Sweeps under torchrun (two processes on the CPU, even beside a GPU; scheduled by torchrun's store alone, no
process group): every batch trained once, by one process, into the runs one process alone trains; with --gather,
rank 0 writes every run, sent by the process that trained it; a killed worker's batch resumes from its checkpoint
and nothing finished trains again. And in one process: who gets which batch, the device each process takes, the
wait that notices a dead process.

The runs are compared bitwise with those of one process alone: both train on this machine, one thread each, the
same batches (each batch is one whole group of its batch key, so it forms alike whatever is stored), in torch's
deterministic mode; a resumed batch is bitwise the uninterrupted one (tests/test_checkpoints.py)."""
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import yaml

from grok_core import distributed
from grok_core.cli import configs_from_spec
from grok_core.config import RunConfig
from grok_core.distributed import Launch, handed_out
from grok_core.store import RunStore

REPO = Path(__file__).resolve().parents[1]
SWEEP = "base: {p: 7, d_model: 8, n_heads: 2, n_steps: 50}\ngrid: {d_mlp: [8, 16, 24, 32]}\nseeds: 2\n"  # 4 batches
DONE = re.compile(r"rank (\d): done 2 x transformer p=7 L=1 D=8 M=(\d+) frac 0.3, steps (\d+)-50")

WORKER = '''"""One process of the test's launch: its own run store (as on hosts that share nothing). In the first
attempt rank 0 waits until rank 1 has begun a batch, and rank 1 is killed at step 30 of it (its step-20 checkpoint
stays)."""
import os, signal, sys, time
from pathlib import Path
from grok_core import train
from grok_core.cli import main

base, sweep = sys.argv[1:]
rank, first = os.environ["RANK"], os.environ["TORCHELASTIC_RESTART_COUNT"] == "0"
began, train_step = Path(base) / "rank1-began", train.Trainer.train_step


def hooked(self):
    if first and rank == "0":
        deadline = time.time() + 120
        while not began.exists() and time.time() < deadline:
            time.sleep(0.01)
    if first and rank == "1":
        began.touch()
        if self.step == 30:
            os.kill(os.getpid(), signal.SIGKILL)
    train_step(self)


train.Trainer.train_step = hooked
sys.exit(main(["--results", f"{base}/rank{rank}", "run", sweep, "--gather", "--ckpt-every", "20", "--device", "cpu"]))
'''


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def torchrun(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *map(str, args)]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The sweep file, its configs, and its runs as one process alone trains them."""
    folder = tmp_path_factory.mktemp("sweep")
    path = folder / "sweep.yaml"
    path.write_text(SWEEP)
    subprocess.run([sys.executable, "-m", "grok_core", "--results", str(folder / "alone"), "run", str(path),
                    "--device", "cpu"], env=_env(), check=True, capture_output=True, timeout=300)
    return path, configs_from_spec(yaml.safe_load(SWEEP)), RunStore(folder / "alone")


def assert_same_runs(store: RunStore, reference: RunStore, configs: list[RunConfig]):
    for c in configs:
        a, b = reference.get(c).history, store.get(c).history
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a), c


@pytest.mark.slow
def test_two_processes_share_the_batches_and_train_what_one_process_trains(sweep, tmp_path):
    path, configs, alone = sweep
    got = torchrun("-m", "grok_core", "--results", tmp_path / "shared", "run", path, "--device", "cpu")
    assert got.returncode == 0, got.stderr[-3000:]
    done = DONE.findall(got.stdout)
    assert sorted(int(m) for _, m, _ in done) == [8, 16, 24, 32] and {s for _, _, s in done} == {"0"}   # once each
    store = RunStore(tmp_path / "shared")
    assert len(store.list()) == 8 and store.checkpoints() == []
    assert_same_runs(store, alone, configs)
    assert got.stdout.count("final_train_acc") == 1                      # rank 0 shows the runs, once


@pytest.mark.slow
def test_a_killed_worker_resumes_and_rank_0_writes_every_run(sweep, tmp_path):
    """--max-restarts=1: torchrun stops rank 0 when rank 1 dies, and starts both again (README, GPU section)."""
    path, configs, alone = sweep
    (tmp_path / "worker.py").write_text(WORKER)
    got = torchrun("--max-restarts=1", tmp_path / "worker.py", tmp_path, path)
    assert got.returncode == 0, got.stderr[-3000:]
    done = DONE.findall(got.stdout)                                       # both attempts'
    # a line from step 50 trained nothing (a batch stopped while its runs were being stored, finished from its
    # last-step checkpoint; its first attempt may have been stopped before saying so); every other line trains a
    # batch, no batch trains twice, and every batch is done
    trained = [int(m) for _, m, s in done if s != "50"]
    assert len(trained) == len(set(trained)) and {int(m) for _, m, _ in done} == {8, 16, 24, 32}
    killed = [int(m) for r, m, s in done if (r, s) == ("1", "20")]
    assert len(killed) == 1                                               # rank 1 resumed its checkpoint of step 20
    store, own = RunStore(tmp_path / "rank0"), RunStore(tmp_path / "rank1")
    assert_same_runs(store, alone, configs)
    assert {store.get(c).meta.get("resumed_at_step") for c in configs if c.d_mlp == killed[0]} == {20}
    by_rank_1 = {int(m) for r, m, _ in done if r == "1"}
    assert {m["config"]["d_mlp"] for m in own.list()} == by_rank_1       # rank 1's store: only what it trained
    assert len(store.list()) == 8 and store.checkpoints() == [] and own.checkpoints() == []


def test_owned_batches_come_first_and_every_batch_is_handed_out_once():
    s = dist.HashStore()
    first, second = handed_out(Launch(0, 2, 0, s), list("abcdef"), [1, -1, -1, 0, -1, -1]), \
        handed_out(Launch(1, 2, 1, s), list("abcdef"), [1, -1, -1, 0, -1, -1])
    taken = [next(first), next(second), next(second)] + list(first) + list(second)   # interleaved, as two processes
    assert taken[:3] == ["d", "a", "b"] and sorted(taken) == list("abcdef")


def test_a_checkpoint_only_some_processes_see_goes_to_one_of_them(tmp_path):
    cfgs = [RunConfig(p=7, d_model=8, n_heads=2, d_mlp=m, n_steps=50) for m in (8, 16, 24, 32)]
    store = RunStore(tmp_path)

    def ck(c, step):
        return {"name": store.checkpoint_path([c]).name, "step": step, "configs": [c.to_dict()]}

    reports = [{"checkpoints": [ck(cfgs[0], 20), ck(cfgs[2], 5)]},
               {"checkpoints": [ck(cfgs[0], 30), ck(cfgs[1], 10), ck(cfgs[2], 5)]}, {"checkpoints": []}]
    got = distributed._make_plan(reports, cfgs, store, "cpu", 4)
    batches = [[RunConfig.from_dict(d) for d in b] for b in got["batches"]]
    assert batches == [[cfgs[0]], [cfgs[1]], [cfgs[2]], [cfgs[3]]]        # checkpointed first, most advanced first
    assert got["owner"] == [1, 1, 0, -1]      # the most advanced copy's holder; of two holders the less loaded
    shared = distributed._make_plan(reports[1:2], cfgs, store, "cpu", 4)  # one store that every process sees
    assert shared["owner"] == [-1] * 4


def test_under_torchrun_each_process_takes_its_local_gpu_or_the_cpu(monkeypatch):
    launch = Launch(1, 2, 1, dist.HashStore(), torchrun=True)
    with pytest.raises(ValueError, match="cuda:LOCAL_RANK"):
        distributed.device(launch, "cuda:0")
    assert distributed.device(launch, "cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert distributed.device(launch) == torch.device("cpu")
        with pytest.raises(ValueError, match="sees no CUDA device"):
            distributed.device(launch, "cuda")
    elif torch.cuda.device_count() == 1:
        with pytest.raises(ValueError, match="LOCAL_RANK 1 has no GPU: 1 CUDA device"):
            distributed.device(launch)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert distributed.join().world_size == 1 and not distributed.join().torchrun
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")
    with pytest.raises(ValueError, match="shares no store"):
        distributed.join()


def test_a_wait_for_a_process_that_died_ends_naming_it():
    s = dist.HashStore()
    with pytest.raises(RuntimeError, match="rank 1 has given no sign of life"):
        distributed._barrier(Launch(0, 2, 0, s), "finished", stale_s=0.3)
    other = threading.Thread(target=distributed._barrier, args=(Launch(1, 2, 0, s), "again"))
    other.start()
    while not s.check(["again"]):                                           # the other has arrived
        time.sleep(0.01)
    distributed._barrier(Launch(0, 2, 0, s), "again", stale_s=0.3)          # the other arrives: both go on
    other.join(timeout=5)
    assert not other.is_alive()
