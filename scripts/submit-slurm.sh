#!/usr/bin/env bash
# Submit a whole recpipe nightly run as one SLURM batch job: `sbatch scripts/submit-slurm.sh
# [WORKFLOW] [DATE]` (defaults: workflows/movielens.yaml, today UTC). The job runs `recpipe run`
# on its allocation; a workflow with `cluster: {kind: local}` uses the job's cores, one with
# `kind: slurm` submits further worker jobs from here. Edit the #SBATCH lines for your site.
#SBATCH --job-name=recpipe-nightly
#SBATCH --partition=batch
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=04:00:00
#SBATCH --output=logs/recpipe-nightly-%j.log
#SBATCH --signal=B:TERM@120
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
WORKFLOW="${1:-workflows/movielens.yaml}"
DATE="${2:-$(date -u +%Y-%m-%d)}"
VENV="${RECPIPE_VENV:-$PWD/.venv}"
mkdir -p logs
# exit codes (docs/operations.md): 0 ok, 2 config/data, 3 Redis unreachable, 75 locked;
# a failed night resumes at its first unfinished stage when submitted again.
exec "$VENV/bin/recpipe" --log-json run "$WORKFLOW" --date "$DATE"
