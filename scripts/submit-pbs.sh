#!/usr/bin/env bash
# Submit a whole recpipe nightly run as one PBS batch job: `qsub -v WORKFLOW=...,DATE=...
# scripts/submit-pbs.sh` (defaults: workflows/movielens.yaml, today UTC). The job runs `recpipe
# run` on its allocation; a workflow with `cluster: {kind: pbs}` submits further worker jobs from
# here. Edit the #PBS lines for your site.
#PBS -N recpipe-nightly
#PBS -q workq
#PBS -l select=1:ncpus=8:mem=32gb
#PBS -l walltime=04:00:00
#PBS -j oe
#PBS -o logs/recpipe-nightly.log
set -euo pipefail
cd "${PBS_O_WORKDIR:-$(dirname "$0")/..}"
WORKFLOW="${WORKFLOW:-workflows/movielens.yaml}"
DATE="${DATE:-$(date -u +%Y-%m-%d)}"
VENV="${RECPIPE_VENV:-$PWD/.venv}"
mkdir -p logs
# exit codes (docs/operations.md): 0 ok, 2 config/data, 3 Redis unreachable, 75 locked;
# a failed night resumes at its first unfinished stage when submitted again.
exec "$VENV/bin/recpipe" --log-json run "$WORKFLOW" --date "$DATE"
