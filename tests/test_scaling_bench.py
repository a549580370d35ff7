"""bench/scaling.py plans on any machine (its timed launches need N GPUs): the commands it would run, and the
efficiency the batches' costs allow when handed out largest first."""
import pytest
import torch


@pytest.fixture(scope="module")
def scaling(load_bench):
    return load_bench("scaling")


def test_the_plan_bound_is_the_idle_share_of_list_scheduling(scaling):
    assert scaling.list_schedule_efficiency([3, 1, 1, 1], 2) == 1.0          # 3 | 1+1+1
    assert scaling.list_schedule_efficiency([2, 2, 2], 2) == 0.75            # 2+2 | 2: one process idle half the time
    assert scaling.list_schedule_efficiency([5], 4) == 0.25


def test_a_dry_run_prints_the_launches_and_their_bounds(scaling, capsys, tmp_path):
    assert scaling.main(["--procs", "1,2", "--dry-run", "--chapters", "fig5_med_primes", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "plan: 32 runs in" in out and "1 process(es): plan's bound on efficiency 100.0%" in out
    assert "torchrun --standalone --nproc-per-node=2 -m grok_core.programme run --max-batch 128 " \
           "--chapters fig5_med_primes" in out
    assert list(tmp_path.iterdir()) == []                                   # a dry run writes nothing
    if torch.cuda.device_count() < 2:
        with pytest.raises(SystemExit):
            scaling.main(["--procs", "1,2", "--chapters", "fig5_med_primes"])
        assert "needs 2 CUDA device(s)" in capsys.readouterr().err
