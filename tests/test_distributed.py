"""Multi-host start-up: the detection logic on fake environments, and a real two-process run."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from mmvid_jax.errors import UserError
from mmvid_jax.infra import distributed
from mmvid_jax.infra.distributed import first_slurm_host, plan_initialization

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _slurm_step(num_nodes=2, tasks_per_node=1, proc_id=1, nodelist="gpu[007-008]", job_id="4100"):
  return {
      "SLURM_JOB_ID": job_id, "SLURM_NTASKS": str(num_nodes * tasks_per_node),
      "SLURM_PROCID": str(proc_id), "SLURM_LOCALID": "0", "SLURM_STEP_NODELIST": nodelist,
      "SLURM_JOB_NODELIST": nodelist, "SLURM_STEP_NUM_NODES": str(num_nodes),
      "SLURM_JOB_NUM_NODES": str(num_nodes)}


def test_no_environment_is_a_single_process_and_initializes_nothing():
  plan = plan_initialization({})
  assert plan.method == "single" and not plan.initializes
  # The real call in this (single) test process: no jax.distributed start, process 0 of 1.
  info = distributed.maybe_initialize(env={})
  assert (info.process_index, info.process_count) == (0, 1)
  assert distributed.maybe_initialize(env={}) is info  # Idempotent.
  assert not __import__("jax").distributed.is_initialized()
  assert distributed.is_main_process()
  distributed.barrier("single-process")  # One process: returns at once.


@pytest.mark.parametrize("env", [
    {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_STEP_NODELIST": "n1"},
    {"OMPI_COMM_WORLD_SIZE": "1"},
    {"TPU_WORKER_HOSTNAMES": "localhost"},
    {"MEGASCALE_NUM_SLICES": "1"},
    {"MMVID_NUM_PROCESSES": "1", "MMVID_PROCESS_ID": "0", "MMVID_COORDINATOR": "h:1"},
])
def test_single_host_environments_do_not_initialize(env):
  assert not plan_initialization(env).initializes


def test_explicit_environment_variables():
  plan = plan_initialization({"MMVID_COORDINATOR": "10.0.0.2:8476", "MMVID_NUM_PROCESSES": "4",
                              "MMVID_PROCESS_ID": "3"})
  assert plan.method == "explicit"
  assert (plan.coordinator_address, plan.num_processes, plan.process_id) == (
      "10.0.0.2:8476", 4, 3)
  assert plan.skip_cluster_detection


def test_arguments_override_environment():
  plan = plan_initialization({"MMVID_COORDINATOR": "a:1", "MMVID_NUM_PROCESSES": "4",
                              "MMVID_PROCESS_ID": "3"},
                             coordinator_address="b:2", num_processes=2, process_id=0)
  assert (plan.coordinator_address, plan.num_processes, plan.process_id) == ("b:2", 2, 0)


@pytest.mark.parametrize("env, message", [
    ({"MMVID_COORDINATOR": "h:1234"}, "MMVID_NUM_PROCESSES, MMVID_PROCESS_ID missing"),
    ({"MMVID_NUM_PROCESSES": "two", "MMVID_PROCESS_ID": "0"}, "must be an integer"),
    ({"MMVID_COORDINATOR": "h", "MMVID_NUM_PROCESSES": "2", "MMVID_PROCESS_ID": "0"},
     "host:port"),
    ({"MMVID_COORDINATOR": "h:1", "MMVID_NUM_PROCESSES": "2", "MMVID_PROCESS_ID": "2"},
     "not in [0, 2)"),
    ({"MMVID_DISTRIBUTED": "yes"}, "'auto', 'off'"),
])
def test_bad_explicit_settings_are_one_clear_line(env, message):
  with pytest.raises(UserError) as error:
    plan_initialization(env)
  text = str(error.value)
  assert message in text and "Fix:" in text and "\n" not in text


def test_slurm_one_task_per_node_builds_the_coordinator_and_keeps_all_gpus():
  plan = plan_initialization(_slurm_step(num_nodes=2, proc_id=1, job_id="4100"))
  assert plan.method == "slurm"
  # Port rule shared with jax: 61440 + job_id % 4096.
  assert plan.coordinator_address == f"gpu007:{61440 + 4100 % 4096}"
  assert (plan.num_processes, plan.process_id) == (2, 1)
  # jax's own SLURM detection would pin each process to GPU SLURM_LOCALID.
  assert plan.skip_cluster_detection


def test_slurm_coordinator_port_override():
  env = {**_slurm_step(), "MMVID_COORDINATOR_PORT": "12345"}
  assert plan_initialization(env).coordinator_address == "gpu007:12345"


def test_slurm_several_tasks_per_node_uses_jax_detection():
  plan = plan_initialization(_slurm_step(num_nodes=2, tasks_per_node=8, proc_id=9))
  assert plan.method == "auto" and plan.coordinator_address is None
  assert not plan.skip_cluster_detection


def test_slurm_fills_what_explicit_settings_leave_out():
  env = {**_slurm_step(proc_id=1), "MMVID_COORDINATOR": "head-node:9999"}
  plan = plan_initialization(env)
  assert (plan.method, plan.coordinator_address, plan.num_processes, plan.process_id) == (
      "explicit", "head-node:9999", 2, 1)


def test_slurm_allocation_without_srun_runs_alone_with_a_warning():
  env = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2", "SLURM_PROCID": "0",
         "SLURM_JOB_NODELIST": "n[1-2]"}
  plan = plan_initialization(env)
  assert not plan.initializes and "srun" in plan.warning


@pytest.mark.parametrize("env", [
    {"TPU_WORKER_HOSTNAMES": "t1-w-0,t1-w-1,t1-w-2,t1-w-3", "TPU_WORKER_ID": "2"},
    {"TPU_PROCESS_ADDRESSES": "10.0.0.1:8471,10.0.0.2:8471"},
    {"MEGASCALE_COORDINATOR_ADDRESS": "10.0.0.1:8080", "MEGASCALE_NUM_SLICES": "2"},
    {"MEGASCALE_NUM_SLICES": "2"},
    {"CLOUD_TPU_TASK_ID": "0"},
    {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "1"},
    {"MMVID_DISTRIBUTED": "auto"},
])
def test_cluster_environments_use_jax_detection(env):
  plan = plan_initialization(env)
  assert plan.method == "auto" and plan.initializes
  assert (plan.coordinator_address, plan.num_processes, plan.process_id) == (None, None, None)


def test_off_wins_over_everything():
  env = {**_slurm_step(), "TPU_WORKER_HOSTNAMES": "a,b", "MMVID_DISTRIBUTED": "off",
         "MMVID_NUM_PROCESSES": "2"}
  assert not plan_initialization(env).initializes


@pytest.mark.parametrize("nodelist, host", [
    ("node001", "node001"),
    ("node001,node002", "node001"),
    ("gpu[003-005,9],cpu1", "gpu003"),
    ("gpu[7,3-5]", "gpu7"),
    ("rack[1-2]-n[07-08]", "rack1-n07"),
    ("a-b-c[10-12]", "a-b-c10"),
])
def test_first_slurm_host(nodelist, host):
  assert first_slurm_host(nodelist) == host


def test_unreadable_nodelist():
  with pytest.raises(UserError, match="first host"):
    first_slurm_host("gpu[003-005")


def test_initializing_after_devices_are_in_use_is_refused(monkeypatch):
  import jax
  jax.devices()  # The backend of this test process is up.
  monkeypatch.setattr(distributed, "_process_info", None)
  with pytest.raises(RuntimeError, match="before anything touches a JAX device"):
    distributed.maybe_initialize(env={"MMVID_COORDINATOR": "localhost:1",
                                      "MMVID_NUM_PROCESSES": "2", "MMVID_PROCESS_ID": "0"})
  assert not jax.distributed.is_initialized()


def test_failed_cluster_detection_is_one_clear_line():
  code = ("from mmvid_jax.errors import UserError\n"
          "from mmvid_jax.infra import distributed\n"
          "try:\n  distributed.maybe_initialize()\n"
          "except UserError as e:\n  print('USER ERROR', e)\n")
  env = {key: value for key, value in os.environ.items()
         if not key.startswith(("MMVID_", "SLURM_", "OMPI_", "TPU_", "MEGASCALE_", "CLOUD_TPU"))}
  env.update(MMVID_DISTRIBUTED="auto", JAX_PLATFORMS="cpu",
             PYTHONPATH=REPO_ROOT + os.pathsep + env.get("PYTHONPATH", ""))
  result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
  (line,) = [line for line in result.stdout.splitlines() if line.startswith("USER ERROR")]
  assert "jax.distributed.initialize failed (MMVID_DISTRIBUTED=auto)" in line
  assert "Fix:" in line and ".." not in line


_WORKER = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    from mmvid_jax.infra import distributed

    process_id, port, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if mode == "slurm":  # Everything from the SLURM variables set by the test.
      info = distributed.maybe_initialize()
    elif process_id == 0:  # One process configured by arguments, the other by env variables.
      info = distributed.maybe_initialize(coordinator_address="localhost:" + port,
                                          num_processes=2, process_id=0)
    else:
      os.environ.update(MMVID_COORDINATOR="localhost:" + port, MMVID_NUM_PROCESSES="2",
                        MMVID_PROCESS_ID=str(process_id))
      info = distributed.maybe_initialize()
    assert distributed.maybe_initialize() is info
    import jax, jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    sharding = NamedSharding(mesh, P("data"))
    # Process p holds rows [2p, 2p+1] of a (4, 3) global array with values 0..11.
    local = np.arange(6, dtype=np.float32).reshape(2, 3) + 6 * process_id
    global_array = jax.make_array_from_process_local_data(sharding, local, (4, 3))
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(global_array)
    column_sums = jax.jit(lambda x: x.sum(0), out_shardings=NamedSharding(mesh, P()))(global_array)
    # Process 0 writes late; after the barrier process 1 must see the file.
    if distributed.is_main_process():
      time.sleep(0.5)
      open("written-by-0", "w").close()
    distributed.barrier("file-written", timeout_s=60)
    saw_file = os.path.exists("written-by-0")
    print("RESULT " + json.dumps(dict(
        index=info.process_index, count=info.process_count, method=info.method,
        main=distributed.is_main_process(), devices=jax.device_count(),
        local_devices=jax.local_device_count(), shape=list(global_array.shape),
        total=float(total.addressable_data(0)), saw_file=saw_file,
        column_sums=np.asarray(column_sums.addressable_data(0)).tolist())), flush=True)
""")


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(("localhost", 0))
    return sock.getsockname()[1]


@pytest.mark.parametrize("mode", ["explicit", "slurm"])
def test_two_processes_on_localhost_sum_a_global_array(tmp_path, mode):
  script = tmp_path / "worker.py"
  script.write_text(_WORKER)
  port = str(_free_port())
  env = {key: value for key, value in os.environ.items()
         if not key.startswith(("MMVID_", "SLURM_", "OMPI_", "TPU_", "MEGASCALE_", "CLOUD_TPU"))}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2",
             PYTHONPATH=REPO_ROOT + os.pathsep + env.get("PYTHONPATH", ""))
  if mode == "slurm":  # Two "nodes" on localhost, one task each, as srun would start them.
    env.update(SLURM_JOB_ID="77", SLURM_NTASKS="2", SLURM_LOCALID="0",
               SLURM_STEP_NODELIST="localhost", SLURM_STEP_NUM_NODES="2",
               MMVID_COORDINATOR_PORT=port)
  workers = [subprocess.Popen([sys.executable, str(script), str(i), port, mode], cwd=tmp_path,
                              env={**env, "SLURM_PROCID": str(i)} if mode == "slurm" else env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
  outputs = []
  try:
    for worker in workers:
      outputs.append(worker.communicate(timeout=120)[0])
  finally:
    for worker in workers:
      if worker.poll() is None:
        worker.kill()
  results = []
  for worker, output in zip(workers, outputs):
    assert worker.returncode == 0, output[-3000:]
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    results.append(json.loads(line[len("RESULT "):]))
  for index, result in enumerate(results):
    assert result["index"] == index and result["count"] == 2
    assert result["method"] == mode
    assert result["main"] == (index == 0)
    assert (result["devices"], result["local_devices"]) == (4, 2)
    assert result["shape"] == [4, 3]
    assert result["total"] == sum(range(12))  # Needs data from both processes.
    assert result["column_sums"] == [18.0, 22.0, 26.0]
    assert result["saw_file"]
