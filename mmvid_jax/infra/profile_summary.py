"""Where the time of a traced step goes: per-kernel and per-XLA-op totals from a profiler trace.

    with jax.profiler.trace(folder):
      for _ in range(steps):
        out = step(...)
      jax.block_until_ready(out)
    print(format_summary(summarize_trace(folder, steps)))

Reads the newest `*.xplane.pb` under the folder with `jax.profiler.ProfileData` (no TensorBoard
plugin needed). On a GPU the device plane has one line per stream (kernels) and an "XLA Ops" line
(HLO ops); on a CPU the XLA ops appear on the host plane's client thread. Durations are summed by
name and divided by `steps`, so the figures are milliseconds per step.
"""

import collections
import dataclasses
import glob
import os

import jax

# Lines that repeat other lines' time (module spans, steps, Python frames).
_SKIPPED_LINES = ("XLA Modules", "Steps", "python")
_CPU_WAITS = ("ThunkExecutor::Execute", "ThunkExecutor::Execute (wait for completion)",
              "SlinkyThreadPool::Await", "ThreadpoolListener::StartRegion",
              "ThreadpoolListener::StopRegion")
KERNEL_GROUPS = (("attention", ("flash", "fmha", "sdpa", "attn")),
                 # XLA:CPU hands dots (with fused elementwise work) to YNNPACK.
                 ("ynnpack fusion", ("ynn_",)),
                 ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "wgmma", "dot")),
                 ("reduction", ("reduce", "reduction")))


def kernel_group(name: str) -> str:
  """attention | matmul | reduction | other, from a kernel's or op's name."""
  lower = name.lower()
  for group, needles in KERNEL_GROUPS:
    if any(needle in lower for needle in needles):
      return group
  return "other"


@dataclasses.dataclass
class Breakdown:
  """Milliseconds per step by name, for one plane and one kind of line."""
  plane: str
  kind: str  # "kernels" or "XLA ops"
  ms_per_step: dict[str, float]

  @property
  def total(self) -> float:
    return sum(self.ms_per_step.values())

  def groups(self) -> dict[str, float]:
    totals = collections.Counter()
    for name, ms in self.ms_per_step.items():
      totals[kernel_group(name)] += ms
    return dict(totals.most_common())


def summarize_trace(folder: str, steps: int) -> list[Breakdown]:
  """Per-step totals of the device planes (or, without a device plane, the host's XLA ops)."""
  paths = sorted(glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True),
                 key=os.path.getmtime)
  if not paths:
    raise FileNotFoundError(f"no *.xplane.pb under {folder}: was jax.profiler.trace used there?")
  data = jax.profiler.ProfileData.from_file(paths[-1])
  planes = [p for p in data.planes if p.name.startswith("/device:")]
  on_host = not planes
  if on_host:
    planes = [p for p in data.planes if p.name == "/host:CPU"]
  result = []
  for plane in planes:
    kernels, ops = collections.Counter(), collections.Counter()
    for line in plane.lines:
      if line.name in _SKIPPED_LINES or line.name.startswith("Source"):
        continue
      target = ops if (line.name == "XLA Ops" or on_host) else kernels
      for event in line.events:
        if on_host and (event.name in _CPU_WAITS or event.name.startswith(("$", "end: "))):
          continue
        target[event.name] += event.duration_ns / 1e6 / steps
    for kind, counter in (("kernels", kernels), ("XLA ops", ops)):
      if counter:
        result.append(Breakdown(plane.name, kind, dict(counter.most_common())))
  return result


def format_summary(breakdowns: list[Breakdown], top: int = 25) -> str:
  lines = []
  for b in breakdowns:
    total = b.total
    lines.append(f"profile {b.plane} {b.kind}: {total:.1f} ms per step")
    lines.append("  by group: " + ", ".join(f"{g} {ms:.1f} ms ({ms / total:.0%})"
                                            for g, ms in b.groups().items()))
    for name, ms in list(b.ms_per_step.items())[:top]:
      lines.append(f"  {ms:8.2f} ms  {ms / total:5.1%}  {name[:110]}")
  return "\n".join(lines)
