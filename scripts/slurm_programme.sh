#!/usr/bin/env bash
# The book's programme on several GPU hosts under Slurm: srun starts one torchrun per host, torchrun one process
# per GPU, and the processes share the batches (README, "Train the book's programme on GPUs").
#
#   sbatch --nodes=2 scripts/slurm_programme.sh --compile              # from the checkout, on a shared filesystem
#   sbatch --nodes=2 scripts/slurm_programme.sh --compile --gather     # hosts that share no disk: runs to rank 0
#
# The arguments go to `python -m grok_core.programme run`. Adapt the #SBATCH lines to the cluster.
#SBATCH --job-name=grokbook-programme
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=01:00:00
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export PYTHONPATH=$PWD
srun torchrun --nnodes="$SLURM_JOB_NUM_NODES" --nproc-per-node=gpu --max-restarts=3 \
    --rdzv-backend=c10d --rdzv-endpoint="$head_node:29400" --rdzv-id="grokbook-$SLURM_JOB_ID" \
    -m grok_core.programme run "$@"
