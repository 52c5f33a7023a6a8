"""Multi-host start-up: decides whether and how to call `jax.distributed.initialize`.

One call at the top of `main`, before anything touches a device:

    from mmvid_jax.infra import distributed
    distributed.maybe_initialize()

How the processes find each other, in order of precedence:

1. `MMVID_DISTRIBUTED=off`: never initialise (each process runs alone).
2. Explicit: arguments, or env `MMVID_COORDINATOR` (host:port), `MMVID_NUM_PROCESSES`,
   `MMVID_PROCESS_ID`. Under SLURM, missing ones are taken from the SLURM environment.
3. `MMVID_DISTRIBUTED=auto` (set by `launch/tpu_vm.sh train`): jax's own cluster detection
   (Cloud TPU VM metadata, SLURM, Open MPI).
4. SLURM with `SLURM_NTASKS` > 1. With one task per node (`launch/gpu_slurm.sbatch`) we build the
   coordinator address ourselves and leave every local GPU visible: jax's SLURM detection would
   restrict each process to GPU `SLURM_LOCALID`, i.e. one GPU per node. With several tasks per
   node (one per GPU) jax's detection is right and is used.
5. Open MPI with `OMPI_COMM_WORLD_SIZE` > 1, or a multi-worker TPU environment
   (`TPU_WORKER_HOSTNAMES`/`TPU_PROCESS_ADDRESSES` with several hosts, `MEGASCALE_*`,
   `CLOUD_TPU_TASK_ID`): jax's cluster detection.
6. Otherwise one process: nothing to do.

The decision (`plan_initialization`) is a pure function of an env mapping, so it is tested on fake
environments; `maybe_initialize` carries it out once (later calls return the same result).
"""

from collections.abc import Mapping
import dataclasses
import os
from typing import Any

from absl import logging
import jax

from mmvid_jax.errors import UserError

ENV_COORDINATOR = "MMVID_COORDINATOR"
ENV_NUM_PROCESSES = "MMVID_NUM_PROCESSES"
ENV_PROCESS_ID = "MMVID_PROCESS_ID"
ENV_MODE = "MMVID_DISTRIBUTED"  # "auto" forces jax's detection, "off" disables.
ENV_COORDINATOR_PORT = "MMVID_COORDINATOR_PORT"

_SINGLE = "single"
_HOW_TO_FIX = (f"set {ENV_COORDINATOR}=host:port, {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} on "
               f"every process, or {ENV_MODE}=off to run each process alone")


@dataclasses.dataclass(frozen=True)
class InitPlan:
  """What `maybe_initialize` will do. `None` fields are left to jax's cluster detection."""
  method: str  # "single", "explicit", "slurm", "auto" (jax's cluster detection)
  reason: str  # Which setting or environment led to this plan (for the log line).
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  # True: pass cluster_detection_method="deactivate" so jax keeps every local device visible.
  skip_cluster_detection: bool = False
  warning: str | None = None  # Logged: a set-up that is probably a mistake but still runs.

  @property
  def initializes(self) -> bool:
    return self.method != _SINGLE


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
  process_index: int
  process_count: int
  method: str


_process_info: ProcessInfo | None = None


def _parse_int(value: Any, name: str) -> int | None:
  if value is None or value == "":
    return None
  try:
    return int(value)
  except (TypeError, ValueError):
    raise UserError(f"{name} must be an integer, got {value!r}. Fix: {_HOW_TO_FIX}.") from None


def first_slurm_host(nodelist: str) -> str:
  """First host of a SLURM hostlist.

  'gpu[003-005,9],cpu1' -> 'gpu003', 'r[1-2]-n[07-08]' -> 'r1-n07'.
  """
  host, depth, bracket = [], 0, []
  for char in nodelist.strip():
    if char == "[":
      depth, bracket = 1, []
    elif char == "]" and depth:
      depth = 0
      host.append("".join(bracket).split(",")[0].split("-")[0])
    elif depth:
      bracket.append(char)
    elif char == ",":
      break
    else:
      host.append(char)
  if not host or depth:
    raise UserError(f"cannot read the first host of the SLURM node list {nodelist!r}. "
                    f"Fix: {_HOW_TO_FIX}.")
  return "".join(host)


def _slurm_coordinator(env: Mapping[str, str]) -> str:
  nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get(
      "SLURM_NODELIST")
  if not nodelist:
    raise UserError("SLURM_NTASKS > 1 but no SLURM node list is set. Fix: start one process per "
                    f"node with srun (see launch/gpu_slurm.sbatch), or {_HOW_TO_FIX}.")
  port = _parse_int(env.get(ENV_COORDINATOR_PORT), ENV_COORDINATOR_PORT)
  if port is None:
    # Same rule as jax: a port derived from the job id, so all tasks agree without talking.
    job_id = _parse_int(env.get("SLURM_JOB_ID"), "SLURM_JOB_ID") or 0
    port = 65535 - 4095 + job_id % 4096
  return f"{first_slurm_host(nodelist)}:{port}"


def _slurm_tasks_per_node(env: Mapping[str, str], num_tasks: int) -> int | None:
  nodes = _parse_int(env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_JOB_NUM_NODES")
                     or env.get("SLURM_NNODES"), "SLURM_NNODES")
  return num_tasks // nodes if nodes else None


def _tpu_hint(env: Mapping[str, str]) -> str | None:
  for name in ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES"):
    hosts = [host for host in env.get(name, "").split(",") if host.strip()]
    if len(hosts) > 1:
      return f"{name} lists {len(hosts)} hosts"
  if env.get("MEGASCALE_COORDINATOR_ADDRESS"):
    return "MEGASCALE_COORDINATOR_ADDRESS is set"
  if (_parse_int(env.get("MEGASCALE_NUM_SLICES"), "MEGASCALE_NUM_SLICES") or 1) > 1:
    return "MEGASCALE_NUM_SLICES > 1"
  if env.get("CLOUD_TPU_TASK_ID", "") != "":
    return "CLOUD_TPU_TASK_ID is set"
  return None


def _check_explicit(coordinator: str, num_processes: int, process_id: int) -> None:
  if ":" not in coordinator or not coordinator.rsplit(":", 1)[1].isdigit():
    raise UserError(f"the coordinator address must be host:port, got {coordinator!r}. "
                    f"Fix: e.g. {ENV_COORDINATOR}=10.0.0.2:8476 (the host of process 0).")
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise UserError(f"process id {process_id} is not in [0, {num_processes}). Fix: number the "
                    f"processes 0..{ENV_NUM_PROCESSES}-1 ({ENV_PROCESS_ID}).")


def plan_initialization(env: Mapping[str, str] | None = None, *,
                        coordinator_address: str | None = None,
                        num_processes: int | None = None,
                        process_id: int | None = None) -> InitPlan:
  """Decides how to start the distributed runtime from arguments and an environment mapping."""
  env = os.environ if env is None else env
  mode = env.get(ENV_MODE, "").strip().lower()
  if mode not in ("", "auto", "off"):
    raise UserError(f"{ENV_MODE} must be 'auto', 'off' or unset, got {mode!r}. "
                    f"Fix: unset it, or {ENV_MODE}=auto to use jax's cluster detection.")
  if mode == "off":
    return InitPlan(_SINGLE, f"{ENV_MODE}=off")

  coordinator = coordinator_address or env.get(ENV_COORDINATOR) or None
  count = num_processes if num_processes is not None else _parse_int(
      env.get(ENV_NUM_PROCESSES), ENV_NUM_PROCESSES)
  index = process_id if process_id is not None else _parse_int(
      env.get(ENV_PROCESS_ID), ENV_PROCESS_ID)
  slurm_tasks = _parse_int(env.get("SLURM_NTASKS"), "SLURM_NTASKS") or 1
  # srun sets SLURM_STEP_NODELIST; a batch script or salloc shell has SLURM_NTASKS without it.
  in_slurm = slurm_tasks > 1 and "SLURM_PROCID" in env and bool(env.get("SLURM_STEP_NODELIST"))

  given = {name: value for name, value in ((ENV_COORDINATOR, coordinator),
                                           (ENV_NUM_PROCESSES, count), (ENV_PROCESS_ID, index))
           if value is not None}
  if given:
    if in_slurm:  # Fill the rest from SLURM (e.g. the sbatch script only sets the coordinator).
      coordinator = coordinator or _slurm_coordinator(env)
      count = slurm_tasks if count is None else count
      index = _parse_int(env["SLURM_PROCID"], "SLURM_PROCID") if index is None else index
    missing = [name for name, value in ((ENV_COORDINATOR, coordinator),
                                        (ENV_NUM_PROCESSES, count), (ENV_PROCESS_ID, index))
               if value is None]
    if missing:
      raise UserError(f"multi-host set-up is incomplete: {', '.join(given)} given but "
                      f"{', '.join(missing)} missing. Fix: {_HOW_TO_FIX}.")
    if count == 1:
      return InitPlan(_SINGLE, f"{ENV_NUM_PROCESSES}=1")
    _check_explicit(coordinator, count, index)
    return InitPlan("explicit", "explicit coordinator/process settings", coordinator, count,
                    index, skip_cluster_detection=True)

  if mode == "auto":
    return InitPlan("auto", f"{ENV_MODE}=auto")
  if in_slurm:
    if _slurm_tasks_per_node(env, slurm_tasks) == 1:
      return InitPlan("slurm", f"SLURM job with {slurm_tasks} tasks, one per node",
                      _slurm_coordinator(env), slurm_tasks,
                      _parse_int(env["SLURM_PROCID"], "SLURM_PROCID"),
                      skip_cluster_detection=True)
    return InitPlan("auto", f"SLURM job with {slurm_tasks} tasks, several per node")
  if slurm_tasks > 1 and not env.get("SLURM_STEP_NODELIST"):
    return InitPlan(_SINGLE, "SLURM allocation, but not started by srun", warning=(
        f"this SLURM allocation has {slurm_tasks} tasks but this process was not started by "
        "srun, so it runs alone; use srun for a multi-host run (see launch/gpu_slurm.sbatch)"))
  if (_parse_int(env.get("OMPI_COMM_WORLD_SIZE"), "OMPI_COMM_WORLD_SIZE") or 1) > 1:
    return InitPlan("auto", "Open MPI job with several ranks")
  tpu_reason = _tpu_hint(env)
  if tpu_reason:
    return InitPlan("auto", f"multi-worker TPU ({tpu_reason})")
  return InitPlan(_SINGLE, "no multi-host environment detected")


def _backends_started() -> bool:
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  return xla_bridge.backends_are_initialized()


def maybe_initialize(coordinator_address: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None,
                     env: Mapping[str, str] | None = None) -> ProcessInfo:
  """Starts `jax.distributed` when this is one process of several; idempotent.

  Must run before anything touches a device (jax.devices(), a computation, ...).
  Returns this process's index and the process count.
  """
  global _process_info
  if _process_info is not None:
    return _process_info
  if jax.distributed.is_initialized():  # Someone else started it: report, do not restart.
    _process_info = ProcessInfo(jax.process_index(), jax.process_count(), "already initialized")
    return _process_info

  plan = plan_initialization(env, coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  if plan.warning:
    logging.warning("%s.", plan.warning)
  if not plan.initializes:
    logging.info("Single process (%s).", plan.reason)
    _process_info = ProcessInfo(0, 1, plan.method)
    return _process_info
  if _backends_started():
    raise RuntimeError("maybe_initialize() must run before anything touches a JAX device "
                       "(jax.devices(), jax.device_count(), a computation); call it first.")

  logging.info("Starting jax.distributed (%s): coordinator %s, %s processes, process id %s.",
               plan.reason, plan.coordinator_address or "auto", plan.num_processes or "auto",
               "auto" if plan.process_id is None else plan.process_id)
  kwargs = dict(coordinator_address=plan.coordinator_address, num_processes=plan.num_processes,
                process_id=plan.process_id)
  if plan.skip_cluster_detection:
    kwargs["cluster_detection_method"] = "deactivate"
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError, TimeoutError, ConnectionError) as e:
    detail = str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
    raise UserError(f"jax.distributed.initialize failed ({plan.reason}): {detail}. Fix: check that "
                    "every process started and can reach the coordinator, or "
                    f"{_HOW_TO_FIX}.") from e
  _process_info = ProcessInfo(jax.process_index(), jax.process_count(), plan.method)
  logging.info("Process %d of %d; %d local of %d global devices (%s).",
               _process_info.process_index, _process_info.process_count,
               jax.local_device_count(), jax.device_count(), jax.default_backend())
  return _process_info


def barrier(name: str, timeout_s: float = 3600.0) -> None:
  """Blocks until every process has reached the barrier `name`; nothing to do for one process.

  For "process 0 writes, the others wait" (building a dataset, writing config.json). It waits
  through jax's coordination service rather than a device collective, so a long wait does not
  run into collective time-outs. Use each name once per run.
  """
  if jax.process_count() == 1:
    return
  from jax._src import distributed as jax_distributed  # pylint: disable=g-import-not-at-top
  client = jax_distributed.global_state.client
  if client is None:
    raise RuntimeError("barrier() needs jax.distributed; call maybe_initialize() first.")
  client.wait_at_barrier(f"mmvid/{name}", int(timeout_s * 1000))


def is_main_process() -> bool:
  """True on process 0, the only one that writes logs, TensorBoard events and galleries."""
  return jax.process_index() == 0
