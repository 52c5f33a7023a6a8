"""The profiler-trace summary used by the benchmarks' --profile flags."""

import jax
import jax.numpy as jnp
import pytest

from mmvid_jax.infra import profile_summary


def test_summary_of_a_traced_cpu_step(tmp_path):
  step = jax.jit(lambda x: jnp.tanh(x @ x).sum())
  x = jnp.ones((256, 256))
  step(x).block_until_ready()
  with jax.profiler.trace(str(tmp_path)):
    for _ in range(2):
      step(x).block_until_ready()
  breakdowns = profile_summary.summarize_trace(str(tmp_path), steps=2)
  assert breakdowns and breakdowns[0].plane == "/host:CPU"
  ops = breakdowns[0].ms_per_step
  assert ops and all(ms >= 0 for ms in ops.values())
  assert breakdowns[0].total > 0
  # Executor waits and Python frames are not ops.
  assert not any(name.startswith("$") or name.startswith("ThunkExecutor") for name in ops)
  assert list(ops.values()) == sorted(ops.values(), reverse=True)
  text = profile_summary.format_summary(breakdowns, top=3)
  assert text.startswith("profile /host:CPU XLA ops:") and "by group:" in text
  assert len(text.splitlines()) <= 2 + 3


def test_groups_and_missing_trace(tmp_path):
  assert profile_summary.kernel_group("cudnn_generated_fort_native_sdpa_sm90_flash_bprop") == "attention"
  assert profile_summary.kernel_group("nvjet_sm90_tst_128x288_64x4_2x1_v_bz_coopA_NNT") == "matmul"
  assert profile_summary.kernel_group("ynn_fusion.12") == "ynnpack fusion"
  assert profile_summary.kernel_group("input_add_reduce_fusion") == "reduction"
  assert profile_summary.kernel_group("loop_convert_fusion_3") == "other"
  breakdown = profile_summary.Breakdown("/device:GPU:0", "kernels",
                                        {"nvjet_gemm": 3.0, "flash_fprop": 1.0, "loop_add": 1.0})
  assert breakdown.total == 5.0
  assert breakdown.groups() == {"matmul": 3.0, "attention": 1.0, "other": 1.0}
  with pytest.raises(FileNotFoundError, match="no \\*.xplane.pb"):
    profile_summary.summarize_trace(str(tmp_path), steps=1)
