#!/usr/bin/env bash
# Checks for one GPU: every project's quickstart for a few steps through its real CLI with the `gpu` trainer
# preset (bf16 mixed precision), then the image classifier's CIFAR-10 benchmark with airbench94's recipe
# (an untimed warm-up run that compiles, then timed seeds) and Lightning's step time against a plain loop.
#
#   DATA_ROOT=../shared/data bash benchmarks/gpu.sh          # RUNS=5 timed seeds; PYTHON="uv run python"
#
# Prints one line per quickstart (ok / FAILED) and the benchmark's table; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-uv run python}
export WANDB_MODE=${WANDB_MODE:-disabled}
failed=0
mkdir -p runs

declare -A QUICKSTARTS=(
    [image_classifier]=configs/image_classifier/digits.yaml
    [time_series]=configs/time_series/quickstart.yaml
    [dcgan]=configs/dcgan/digits.yaml
    [sentiment]=configs/sentiment/quickstart.yaml
    [video_classifier]=configs/video_classifier/procedural.yaml
)
for project in "${!QUICKSTARTS[@]}"; do
    start=$SECONDS
    if $PYTHON "projects/$project/train.py" fit --config "${QUICKSTARTS[$project]}" --config configs/trainer/gpu.yaml \
        --trainer.max_steps=20 --trainer.limit_val_batches=2 --trainer.limit_test_batches=2 \
        --trainer.enable_progress_bar=false >"runs/gpu_$project.log" 2>&1; then
        echo "quickstart on GPU: $project ok ($((SECONDS - start)) s)"
    else
        echo "quickstart on GPU: $project FAILED ($((SECONDS - start)) s), last lines of runs/gpu_$project.log:"
        tail -n 15 "runs/gpu_$project.log"
        failed=1
    fi
done

$PYTHON benchmarks/image_classifier.py --part accuracy --config configs/trainer/gpu.yaml \
    --config configs/image_classifier/cifar10.yaml --warmup-epochs 1 --runs "${RUNS:-5}" || failed=1
$PYTHON benchmarks/image_classifier.py --part overhead --steps 100 || failed=1
exit $failed
