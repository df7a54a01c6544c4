#!/usr/bin/env bash
# The GPU checks of one device session, in one go (docs/gpu.md): the CUDA tests of the losses, skeletons, metrics
# and post-processing; the four bundles' CUDA stage tests one at a time, each with its own limit; the demo at its
# GPU defaults; the skeleton benchmark and the GPU table. Every log lands in $OUT (or ./gpu_check_out), a summary
# line per step in summary.txt.
#
# The device image has torch (CUDA 13), Python 3.12 and NumPy 2 but none of our other dependencies: fetch them
# here first, into .whl (ignored by git), and carry it:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       monai==1.6.1 pytorch-ignite nibabel connected-components-3d edt numba llvmlite scikit-image scipy \
#       imageio tifffile lazy-loader networkx itk-core fire pyyaml jinja2 markupsafe pytest pluggy iniconfig cucim-cu13
# Each call of the device tool runs at most 10 minutes and a session has about 15 minutes of device time, so run it
# as two calls of under 9 minutes each, the first being the more urgent:
#   run(command="bash scripts/gpu_check.sh tests bundles", carry=[".whl"], timeout_s=600)   # about 8 minutes at most
#   run(command="bash scripts/gpu_check.sh table demo", carry=[".whl"], timeout_s=600)      # about 9 minutes at most
# Usage: bash scripts/gpu_check.sh [step ...]   steps: tests bundles demo table (default: all four)
set -uo pipefail
out=${OUT:-gpu_check_out}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD
export PYTHONUNBUFFERED=1 PATH=/tmp/site/bin:$PATH
steps=${*:-tests bundles demo table}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1
python3 -c "import torch, monai, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'monai', monai.__version__, 'numpy', numpy.__version__)" >> "$out/gpu.txt" 2>&1
start=$(date +%s)
note() { echo "$1: rc $2 after $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"; }

for step in $steps; do
    case $step in
    tests)
        timeout 150 python3 -m pytest -q -m cuda tests/test_losses.py tests/test_cbdice.py tests/test_skeleton.py \
            tests/test_critical_mask.py tests/test_metrics.py tests/test_post_process.py > "$out/cuda_tests.log" 2>&1
        note "pytest -m cuda (losses, cbDice, skeletons, critical mask, metrics, post-processing)" $?
        ;;
    bundles)
        for name in roads_2d hrf_retina_2d vessap_3d cement_lines_3d; do
            timeout 100 python3 -m pytest -q -m cuda "tests/test_bundles.py::test_every_stage_on_cuda[$name]" > "$out/bundle_$name.log" 2>&1
            note "bundle CUDA stages $name" $?
        done
        ;;
    demo)
        timeout 240 python3 -m contextloss_monai demo --device cuda --out /tmp/demo_cuda > "$out/demo.log" 2>&1
        note "contextloss demo --device cuda" $?
        cp /tmp/demo_cuda/results.md "$out/demo_results.md" 2>/dev/null
        ;;
    table)
        timeout 40 python3 -m contextloss_monai bench-skeleton --device cuda --markdown > "$out/skeleton_table.md" 2>&1
        note "bench-skeleton --device cuda (packed words against the bool map, identical output)" $?
        timeout 270 python3 -m contextloss_monai bench-gpu --markdown --repeats 3 > "$out/gpu_table.md" 2> "$out/gpu_table.log"
        note "bench-gpu --markdown" $?
        ;;
    *)
        echo "unknown step $step (tests bundles demo table)" >&2
        exit 2
        ;;
    esac
done
cat "$out/summary.txt"
