#!/usr/bin/env bash
# Several transformer_mfu.py variants in one device lease: one process each (an out-of-memory
# variant cannot spoil the next), a time limit each, the full log and a summary table.
#
#   bash benchmarks/transformer_mfu_sweep.sh [LOG_DIR] [PER_VARIANT_SECONDS] [SWEEP]
#
# SWEEP names the list of variants (docs/performance.md has each one's results): "remat" (the
# default) the remat policies; "padding" the trunk's one-time padding against the per-layer
# padding before, at the fastest setting (unrolled, no remat),
# and what the [ST1]/[VID] row recomputation costs (--mask=none, a diagnostic, not MMVID).
# Each line of VARIANTS is a name, optional environment settings (NAME=value, e.g. XLA_FLAGS=...)
# and the arguments for benchmarks/transformer_mfu.py; the one with --profile also gets its
# device-time breakdown printed at the end. Variants run in order, most wanted first,
# and the summary is written as each ends, so a lease cut short still reports what ran. Needs a CUDA
# GPU with JAX, Flax and optax; ml_collections may come from PYTHONPATH. MFU_COMMON replaces
# the arguments every variant shares (a CPU smoke run: MFU_COMMON="--variant=tiny --attention=xla
# --steps=1").
set -u
cd "$(dirname "$0")/.." || exit 1
log_dir=${1:-runs/mfu_sweep}  # relative paths: from the repository root
limit=${2:-150}
sweep=${3:-remat}
mkdir -p "$log_dir"
python=${PYTHON:-python3}
common=${MFU_COMMON:-"--attention=cudnn --steps=6 --warmup=2"}
profile_dir="$log_dir/trace"
fastest="--scan=off --remat=off"
before="--entry_pad=off"
case $sweep in
  remat) VARIANTS=(
    "b4_full_cse        --batch=4 --remat_policy=full --prevent_cse=on --residuals"
    "b4_attention       --batch=4 --remat_policy=attention --residuals"
    "b4_dots            --batch=4 --remat_policy=dots --profile=$profile_dir"
    "b16_dots           --batch=16 --remat_policy=dots"
    "b4_full            --batch=4 --remat_policy=full"
    "b16_attention      --batch=16 --remat_policy=attention"
    "b4_dots_tritongemm XLA_FLAGS=--xla_gpu_triton_gemm_any=true --batch=4 --remat_policy=dots"
    "b8_dots_unscanned  --batch=8 --remat_policy=dots --scan=off"
  ) ;;
  padding) VARIANTS=(
    "b8_now             --batch=8 $fastest --profile=$profile_dir"
    "b8_before          --batch=8 $fastest $before"
    "b6_now             --batch=6 $fastest"
    "b10_now            --batch=10 $fastest"
    "b4_config_now      --batch=4"
    "b4_config_before   --batch=4 $before"
    "b8_no_row_fixup    --batch=8 $fastest --mask=none"
    "b8_now_cublaslt    XLA_FLAGS=--xla_gpu_enable_cublaslt=true --batch=8 $fastest"
  ) ;;
  *) echo "unknown sweep '$sweep': use remat or padding" >&2; exit 2 ;;
esac
summary="$log_dir/summary.txt"
: >"$summary"
start=$SECONDS
for line in "${VARIANTS[@]}"; do
  read -r name rest <<<"$line"
  settings=() args=()
  for word in $rest; do
    if [[ $word == --* ]]; then args+=("$word"); else settings+=("$word"); fi
  done
  echo "=== $name (at $((SECONDS - start)) s): ${settings[*]} ${args[*]}" | tee -a "$log_dir/all.log"
  # shellcheck disable=SC2086  # $common splits on purpose
  env "${settings[@]}" timeout "$limit" "$python" benchmarks/transformer_mfu.py $common \
    "${args[@]}" >"$log_dir/$name.log" 2>&1
  status=$?
  cat "$log_dir/$name.log" >>"$log_dir/all.log"
  result=$(grep -E "^(step|model FLOPs|peak device)" "$log_dir/$name.log" | tr '\n' ' ')
  compile=$(grep -o "compile [0-9.]* s" "$log_dir/$name.log")
  [ "$status" -eq 0 ] || result="FAILED (exit $status): $(tail -n 2 "$log_dir/$name.log" | tr '\n' ' ')"
  echo "$name | $compile | $result" | tee -a "$summary"
done
echo "--- what a block keeps (lines naming the fused kernel's outputs):"
grep -h -E "^(residuals kept|.*dot_product_attention)" "$log_dir"/*.log
profiled=$(printf '%s\n' "${VARIANTS[@]}" | grep -m1 -e "--profile" | cut -d' ' -f1)
echo "--- device-time breakdown of $profiled:"
sed -n '/^loss/,$p' "$log_dir/$profiled.log" | head -n 40
echo "--- total $((SECONDS - start)) s"
grep -m1 "^device:" "$log_dir/all.log"
cat "$summary"
