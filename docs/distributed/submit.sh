#!/bin/bash
# Submits an xai-audit job to Slurm: SHARDS array tasks (default 4), each
# auditing one shard with audit.sbatch, then the merge, which starts only
# once every task has succeeded (afterok) and is cancelled if one fails.
# Run it from the directory the paths in audit.sbatch are relative to.
set -eo pipefail

shards=${SHARDS:-4}
script=$(dirname "$0")/audit.sbatch
array=$(sbatch --parsable --array=0-$((shards - 1)) "$script")
sbatch --dependency=afterok:"${array%%;*}" --kill-on-invalid-dep=yes "$script" merge
