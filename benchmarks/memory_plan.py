"""Ahead-of-time memory plan of the transformer train step on a fake device mesh (no arrays).

    python benchmarks/memory_plan.py                              # MUGEN + MM-VoxCeleb, 4 and 8
    python benchmarks/memory_plan.py --configs=mugen --devices=4 --batch=16
    python benchmarks/memory_plan.py --configs=mugen --devices=8 --mesh=2,4,1 --negatives=split

Compiles `jax.jit(train_step).lower(abstract state, abstract batch).compile()` over fake CPU
devices and prints one Markdown row per plan: per-device parameters, Adam moments, frozen
tokenizer weights, XLA temporaries (activations kept for the backward pass, gradients,
workspace) and the peak, in GiB, with whether it fits a TPU v4 chip's 32 GiB HBM.
`--devices=4` is a TPU v4-8 (4 chips), `--devices=8` an 8-GPU node or a v5e-8.

Configs: `mugen` is `configs/mugen.py` (default variant, with its VQGAN encoder in the step);
`mmvox` is an MM-VoxCeleb-sized model on the same code: MMVID's text->video transformer
(768 x 12, CLIP-BPE-sized text table of 49408 rows, 50 text tokens) on 8 frames of 8 x 8 codes
from an f16 VQGAN at 128 px (MMVID's VoxCeleb setting), batch 32.
"""

import argparse
import importlib.util
import os
import sys

NUM_FAKE_DEVICES = 8
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={NUM_FAKE_DEVICES}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmvid_jax.infra import memory  # pylint: disable=wrong-import-position


def mugen_config():
  spec = importlib.util.spec_from_file_location("mugen_cfg", os.path.join(ROOT, "configs",
                                                                          "mugen.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config("default")


def mmvox_config():
  """MUGEN's sections resized to MMVID's MM-VoxCeleb text->video model."""
  config = mugen_config()
  config.experiment = "mmvox"
  config.data.image_size = 128
  config.data.num_frames = 8
  config.data.text_seq_len = 50
  config.data.sentencepiece_vocab_size = 49408
  config.transformer.batch_size = 32
  tok = config.tokenizer
  tok.channel_mult = (1, 1, 2, 2, 4)  # f16: 128 px -> 8 x 8 codes per frame
  tok.downsample_factor = 16
  tok.latent_size = 8
  tok.attn_resolutions = (8,)
  return config


CONFIGS = {"mugen": mugen_config, "mmvox": mmvox_config}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--configs", default="mugen,mmvox")
  parser.add_argument("--devices", default="4,8", help="comma-separated device counts")
  parser.add_argument("--mesh", default="",
                      help="data,fsdp,model sizes (default: the config's mesh, data=-1)")
  parser.add_argument("--batch", type=int, default=0, help="global batch (default: config's)")
  parser.add_argument("--dtype", default="", help="transformer.compute_dtype override")
  parser.add_argument("--negatives", default="", help="transformer.negatives override")
  parser.add_argument("--remat", choices=("", "on", "off"), default="")
  parser.add_argument("--remat_policy", default="",
                      help="transformer.remat_policy override (full | attention | dots)")
  args = parser.parse_args()

  print(memory.TABLE_HEADER[:memory.TABLE_HEADER.index("\n")].replace("| peak |",
                                                                       "| peak | fits 32 GiB |"))
  print("|---" * 9 + "|")
  for name in args.configs.split(","):
    config = CONFIGS[name]()
    tr = config.transformer
    label = name
    if args.dtype:
      tr.compute_dtype = args.dtype
      label += f" {args.dtype}"
    if args.negatives:
      tr.negatives = args.negatives
      label += f" negatives={args.negatives}"
    if args.remat:
      tr.remat = args.remat == "on"
      label += f" remat {args.remat}"
    if args.remat_policy:
      tr.remat_policy = args.remat_policy
      label += f" remat_policy={args.remat_policy}"
    for devices in (int(d) for d in args.devices.split(",")):
      mesh_config = dict(config.mesh)
      if args.mesh:
        mesh_config.update(zip(("data", "fsdp", "model"), (int(v) for v in args.mesh.split(","))))
      mesh = memory.fake_mesh(mesh_config, devices)
      report = memory.transformer_plan(config, mesh, name=f"{label}, {devices} devices",
                                       batch_size=args.batch or None)
      print(f"{report.row()} {'yes' if report.fits() else 'no'} |", flush=True)


if __name__ == "__main__":
  main()
