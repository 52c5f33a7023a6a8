#!/usr/bin/env bash
# Cloud TPU VM launcher for mmvid-jax: create -> install -> data -> train -> logs -> stop -> delete.
# Every subcommand acts on all workers of the slice where that matters. Guide: docs/launch.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/tpu_vm.sh [options] SUBCOMMAND [-- extra main.py flags]

Subcommands:
  create    create the TPU VM (gcloud compute tpus tpu-vm create)
  install   copy this checkout (or clone --repo) to every worker, make a venv, install
            requirements + jax[tpu] at the pinned jax version + the weight packages + the repo
  data      print the TFDS data_dir to train with; with --local-data, rsync a local TFDS
            folder to --data-dir (a gs:// bucket) first; with --build, build the datasets once
            on worker 0 (main.py --config.stage=data, one process, CPU) before training
  train     start python -m mmvid_jax.main on every worker in the background (nohup),
            logging to REMOTE_DIR/logs/train.log on each worker
  logs      stream the training log of one worker (default worker 0)
  status    the TPU state and whether a run is going on each worker
  stop      SIGTERM the run on every worker (the trainer checkpoints, then exits) and wait
  delete    delete the TPU VM

Settings (flag, or environment variable of the same name in capitals):
  --name NAME              TPU VM name                                      (NAME)
  --zone ZONE              e.g. us-central2-b                               (ZONE)
  --project PROJECT        GCP project (default: gcloud's configured one)   (PROJECT)
  --accelerator TYPE       e.g. v4-8, v4-32, v5litepod-8, v5p-8, v6e-8      (ACCELERATOR)
  --runtime VERSION        TPU software version (default from the type)     (RUNTIME)
  --spot | --preemptible   create a Spot / preemptible TPU                  (SPOT=1, PREEMPTIBLE=1)
  --config PATH            main.py config (default configs/shapes.py)       (CONFIG)
  --workdir DIR            run folder; gs://... for multi-host slices       (WORKDIR)
  --data-dir DIR           TFDS data_dir, e.g. gs://bucket/tfds             (DATA_DIR)
  --local-data DIR         local TFDS folder to rsync to --data-dir (data)  (LOCAL_DATA)
  --build                  data: build the data on worker 0 (needs install)   (BUILD=1)
  --repo URL [--ref REF]   install: git clone URL instead of copying this checkout (REPO, REF)
  --remote-dir DIR         checkout folder on the workers (default mmvid-jax) (REMOTE_DIR)
  --python EXE             Python >= 3.11 on the workers (default python3.11)  (PYTHON)
  --worker N               logs: which worker to stream (default 0)         (WORKER)
  --stop-timeout SECONDS   stop: how long to wait for the checkpoint (default 600) (STOP_TIMEOUT)
  --yes                    delete without the confirmation prompt
  --dry-run                print every command instead of running it
  -h, --help               this help

Arguments after "--", and any --config.<key>=<value>, are passed to main.py by train, e.g.
  launch/tpu_vm.sh train --name=mmvid --zone=us-central2-b --workdir=gs://bucket/runs/shapes \
      --config=configs/shapes.py -- --config.tokenizer.num_steps=5000
EOF
}

die() {
  echo "error: $*" >&2
  exit 2
}

# Shell-quotes one word only when needed, so dry-run output stays readable and copy-pastable.
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

quote_all() {
  local out="" word
  for word in "$@"; do
    out+="${out:+ }$(quote "$word")"
  done
  printf '%s' "$out"
}

# Runs a command, or only prints it under --dry-run.
run() {
  if ((DRY_RUN)); then
    printf '+ %s\n' "$(quote_all "$@")"
  else
    "$@"
  fi
}

require() {  # require VAR --flag example
  [[ -n "${!1:-}" ]] || die "$1 is not set. Fix: pass $2=$3 or export $1=$3."
}

default_runtime() {
  case "$1" in
    v6e*) echo v2-alpha-tpuv6e ;;
    v5p*) echo v2-alpha-tpuv5 ;;
    v5litepod* | v5e*) echo v2-alpha-tpuv5-lite ;;
    v2* | v3* | v4*) echo tpu-ubuntu2204-base ;;
    *) echo "" ;;
  esac
}

NAME="${NAME:-}" ZONE="${ZONE:-}" PROJECT="${PROJECT:-}" ACCELERATOR="${ACCELERATOR:-}"
RUNTIME="${RUNTIME:-}" SPOT="${SPOT:-0}" PREEMPTIBLE="${PREEMPTIBLE:-0}"
CONFIG="${CONFIG:-configs/shapes.py}" WORKDIR="${WORKDIR:-}" DATA_DIR="${DATA_DIR:-}"
LOCAL_DATA="${LOCAL_DATA:-}" REPO="${REPO:-}" REF="${REF:-}" REMOTE_DIR="${REMOTE_DIR:-mmvid-jax}"
PYTHON="${PYTHON:-python3.11}" WORKER="${WORKER:-0}" STOP_TIMEOUT="${STOP_TIMEOUT:-600}"
BUILD="${BUILD:-0}"
YES=0 DRY_RUN=0 SUBCOMMAND="" EXTRA=()

while (($#)); do
  arg=$1
  shift
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1; continue ;;
    --spot) SPOT=1; continue ;;
    --preemptible) PREEMPTIBLE=1; continue ;;
    --yes) YES=1; continue ;;
    --build) BUILD=1; continue ;;
    --) EXTRA+=("$@"); break ;;
    --config.*) EXTRA+=("$arg"); continue ;;
    --*=*) flag=${arg%%=*} value=${arg#*=} ;;
    --*)
      flag=$arg
      (($#)) || die "$flag needs a value. Fix: $flag=VALUE (see --help)."
      value=$1
      shift
      ;;
    *)
      [[ -z $SUBCOMMAND ]] || die "unexpected argument '$arg'. Fix: pass main.py flags after '--'."
      SUBCOMMAND=$arg
      continue
      ;;
  esac
  case "$flag" in
    --name) NAME=$value ;;
    --zone) ZONE=$value ;;
    --project) PROJECT=$value ;;
    --accelerator | --accelerator-type) ACCELERATOR=$value ;;
    --runtime | --version) RUNTIME=$value ;;
    --config) CONFIG=$value ;;
    --workdir) WORKDIR=$value ;;
    --data-dir) DATA_DIR=$value ;;
    --local-data) LOCAL_DATA=$value ;;
    --repo) REPO=$value ;;
    --ref) REF=$value ;;
    --remote-dir) REMOTE_DIR=$value ;;
    --python) PYTHON=$value ;;
    --worker) WORKER=$value ;;
    --stop-timeout) STOP_TIMEOUT=$value ;;
    *) die "unknown option $flag. Fix: see launch/tpu_vm.sh --help." ;;
  esac
done

[[ -n $SUBCOMMAND ]] || { usage >&2; die "no subcommand given. Fix: e.g. launch/tpu_vm.sh create."; }
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ((!DRY_RUN)) && [[ $SUBCOMMAND != data || $BUILD == 1 ]] && ! command -v gcloud >/dev/null; then
  die "gcloud not found. Fix: install the Google Cloud CLI, or use --dry-run to see the commands."
fi

# Flags shared by every gcloud tpu-vm call.
tpu_flags() {
  require NAME --name mmvid-v4
  require ZONE --zone us-central2-b
  TPU_FLAGS=(--zone="$ZONE")
  [[ -z $PROJECT ]] || TPU_FLAGS+=(--project="$PROJECT")
}

# The checkout folder as the workers' shell should see it (relative paths are under $HOME).
remote_dir() {
  if [[ $REMOTE_DIR == /* ]]; then
    quote "$REMOTE_DIR"
  else
    printf '"%s"/%s' "\$HOME" "$(quote "$REMOTE_DIR")"
  fi
}

ssh_workers() {  # ssh_workers WORKERS REMOTE_COMMAND
  run gcloud compute tpus tpu-vm ssh "$NAME" "${TPU_FLAGS[@]}" --worker="$1" --command="$2"
}

# Shell snippet (run on a worker): is a run going? Sets $pid.
# shellcheck disable=SC2016  # Expanded on the worker, not here.
RUNNING='[ -f logs/train.pid ] && pid=$(cat logs/train.pid) && kill -0 "$pid" 2>/dev/null'

cmd_create() {
  tpu_flags
  require ACCELERATOR --accelerator v4-8
  [[ -n $RUNTIME ]] || RUNTIME=$(default_runtime "$ACCELERATOR")
  require RUNTIME --runtime tpu-ubuntu2204-base
  ((!(SPOT && PREEMPTIBLE))) || die "--spot and --preemptible exclude each other. Fix: pick one."
  local extra=()
  ((!SPOT)) || extra+=(--spot)
  ((!PREEMPTIBLE)) || extra+=(--preemptible)
  run gcloud compute tpus tpu-vm create "$NAME" "${TPU_FLAGS[@]}" \
    --accelerator-type="$ACCELERATOR" --version="$RUNTIME" ${extra[@]+"${extra[@]}"}
}

# A tarball of this checkout: committed files plus uncommitted edits to tracked files
# (`git stash create` snapshots them without touching the work tree, the index or any ref).
make_tarball() {
  git -C "$REPO_ROOT" rev-parse --git-dir >/dev/null 2>&1 ||
    die "$REPO_ROOT is not a git checkout. Fix: install with --repo=URL to clone on the workers."
  local ref=HEAD
  if ! git -C "$REPO_ROOT" diff --quiet HEAD --; then
    if ((DRY_RUN)); then
      ref="\$(git stash create)"
    else
      ref=$(git -C "$REPO_ROOT" stash create)
    fi
  fi
  [[ -z $(git -C "$REPO_ROOT" ls-files --others --exclude-standard) ]] ||
    echo "note: untracked files are not copied; git add them to include them." >&2
  run git -C "$REPO_ROOT" archive --format=tar.gz -o "$1" "$ref"
}

cmd_install() {
  tpu_flags
  local jax_version dir fetch
  jax_version=$(sed -n 's/^jax==\([^[:space:]#]*\).*/\1/p' "$REPO_ROOT/requirements.txt")
  [[ -n $jax_version ]] || die "no 'jax==VERSION' line in requirements.txt. Fix: pin jax there."
  dir=$(remote_dir)
  if [[ -n $REPO ]]; then
    fetch="{ [ -d $dir/.git ] || git clone -q $(quote "$REPO") $dir; }"
    fetch+=" && git -C $dir fetch -q origin && git -C $dir checkout -q $(quote "${REF:-origin/HEAD}")"
  else
    local tarball="${TMPDIR:-/tmp}/mmvid-jax-$NAME.tar.gz"
    make_tarball "$tarball"
    run gcloud compute tpus tpu-vm scp "$tarball" "$NAME:mmvid-jax.tar.gz" "${TPU_FLAGS[@]}" \
      --worker=all
    run rm -f "$tarball"
    fetch="mkdir -p $dir && tar -xzf \"\$HOME\"/mmvid-jax.tar.gz -C $dir"
  fi
  local py pip
  py=$(quote "$PYTHON")
  pip="$dir/.venv/bin/python -m pip install -q"
  ssh_workers all "set -e; $fetch \
&& { command -v $py >/dev/null || { sudo apt-get update -q && sudo apt-get install -y -q $py $py-venv; }; } \
&& { [ -x $dir/.venv/bin/python ] || $py -m venv $dir/.venv; } \
&& $pip -U pip setuptools && cd $dir && $pip -r requirements.txt \
&& $pip --no-deps -r requirements-nodeps.txt \
&& $pip 'jax[tpu]==$jax_version' -f https://storage.googleapis.com/jax-releases/libtpu_releases.html \
&& $pip --no-deps --no-build-isolation -e . \
&& .venv/bin/python -c 'import jax, libtpu, mmvid_jax; print(\"jax\", jax.__version__, \"with libtpu\")'"
}

cmd_data() {
  local data_dir=$DATA_DIR
  if [[ -n $LOCAL_DATA ]]; then
    require DATA_DIR --data-dir gs://my-bucket/tfds
    [[ $DATA_DIR == gs://* ]] || die "--data-dir must be a gs:// path to rsync to. Fix: --data-dir=gs://my-bucket/tfds."
    ((DRY_RUN)) || [[ -d $LOCAL_DATA ]] || die "--local-data $LOCAL_DATA is not a folder. Fix: give the local TFDS data_dir."
    run gsutil -m rsync -r "$LOCAL_DATA" "$DATA_DIR"
  fi
  if [[ -z $data_dir ]]; then
    require WORKDIR --workdir gs://my-bucket/runs/shapes
    data_dir="$WORKDIR/tfds"
    echo "data_dir: $data_dir (the default: the data stage builds Moving Shapes there)"
  else
    echo "data_dir: $data_dir"
  fi
  if ((BUILD)); then
    # One process on worker 0, on CPU: no TPU slice to join, no other worker writing the data.
    tpu_flags
    require WORKDIR --workdir gs://my-bucket/runs/shapes
    local args=(--config="$CONFIG" --workdir="$WORKDIR" --config.stage=data)
    [[ -z $DATA_DIR ]] || args+=(--config.data.data_dir="$DATA_DIR")
    args+=(${EXTRA[@]+"${EXTRA[@]}"})
    ssh_workers 0 "cd $(remote_dir) && JAX_PLATFORMS=cpu MMVID_DISTRIBUTED=off \
.venv/bin/python -m mmvid_jax.main $(quote_all "${args[@]}")"
  fi
  echo "train with: --config.data.data_dir=$data_dir (train adds it when --data-dir is set)"
}

cmd_train() {
  tpu_flags
  require WORKDIR --workdir gs://my-bucket/runs/shapes
  [[ $WORKDIR == gs://* ]] || echo "warning: WORKDIR=$WORKDIR is not a gs:// path; on a" \
    "multi-host slice every worker must write checkpoints to the same shared workdir." >&2
  local args=(--config="$CONFIG" --workdir="$WORKDIR")
  if [[ -n $DATA_DIR && " ${EXTRA[*]-} " != *" --config.data.data_dir="* ]]; then
    args+=(--config.data.data_dir="$DATA_DIR")
  fi
  args+=(${EXTRA[@]+"${EXTRA[@]}"})
  local dir main
  dir=$(remote_dir)
  main="MMVID_DISTRIBUTED=auto nohup .venv/bin/python -m mmvid_jax.main $(quote_all "${args[@]}")"
  ssh_workers all "cd $dir && mkdir -p logs \
&& if $RUNNING; then echo \"\$(hostname): a run is already going (pid \$pid); stop it first\" >&2; exit 1; fi \
&& echo \"=== \$(date -u) start\" >> logs/train.log \
&& { $main >> logs/train.log 2>&1 < /dev/null & echo \$! > logs/train.pid; } \
&& echo \"\$(hostname): started pid \$(cat logs/train.pid), log $dir/logs/train.log\""
}

cmd_logs() {
  tpu_flags
  ssh_workers "$WORKER" "tail -n 200 -F $(remote_dir)/logs/train.log"
}

cmd_status() {
  tpu_flags
  run gcloud compute tpus tpu-vm describe "$NAME" "${TPU_FLAGS[@]}" \
    --format='value(state,acceleratorType)'
  ssh_workers all "if ! cd $(remote_dir) 2>/dev/null; then echo \"\$(hostname): not installed\"; \
elif $RUNNING; then echo \"\$(hostname): running (pid \$pid)\"; else echo \"\$(hostname): no run\"; fi"
}

cmd_stop() {
  tpu_flags
  [[ $STOP_TIMEOUT =~ ^[0-9]+$ ]] || die "--stop-timeout must be whole seconds. Fix: --stop-timeout=600."
  ssh_workers all "cd $(remote_dir) && if $RUNNING; then kill -TERM \"\$pid\" \
&& for _ in \$(seq $STOP_TIMEOUT); do kill -0 \"\$pid\" 2>/dev/null || break; sleep 1; done; \
if kill -0 \"\$pid\" 2>/dev/null; then echo \"\$(hostname): pid \$pid still running after \
$STOP_TIMEOUT s (still saving?)\"; exit 1; else rm -f logs/train.pid; echo \"\$(hostname): stopped\"; fi; \
else echo \"\$(hostname): no run\"; fi"
}

cmd_delete() {
  tpu_flags
  local extra=()
  ((!YES)) || extra+=(--quiet)
  run gcloud compute tpus tpu-vm delete "$NAME" "${TPU_FLAGS[@]}" ${extra[@]+"${extra[@]}"}
}

case "$SUBCOMMAND" in
  create | install | data | train | logs | status | stop | delete) "cmd_$SUBCOMMAND" ;;
  *) die "unknown subcommand '$SUBCOMMAND'. Fix: one of create, install, data, train, logs, status, stop, delete." ;;
esac
