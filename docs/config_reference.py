"""Writes docs/config_reference.md from configs/shapes.py: every key, its default, its `tiny` value
and what it means. The values are read from the config itself, so they cannot drift; the meanings
are below (tests/test_config_reference.py fails when a config key has none).

    python docs/config_reference.py           # rewrite docs/config_reference.md
    python docs/config_reference.py --check   # exit 1 if the file is out of date
"""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "docs", "config_reference.md")

SECTIONS = {
    "": "Top level",
    "data": "`data`: dataset, input pipeline, text (docs/data.md)",
    "tokenizer": "`tokenizer`: stage 1, the per-frame VQGAN (docs/tokenizer.md)",
    "transformer": "`transformer`: stage 2, the MMVID transformer (docs/transformer.md)",
    "sample": "`sample`: stage 3 defaults, also used by the command and the Python API "
              "(docs/sampling.md)",
    "evaluate": "`evaluate`: stage 4 (docs/evaluation.md)",
    "mesh": "`mesh`: device mesh axes (docs/launch.md)",
}

MEANINGS = {
    "experiment": "run name shown in logs and gallery titles",
    "variant": "the config variant after the colon (`default`, `tiny`, `text_image`, `dependent`)",
    "stage": "stages to run: `all`, `data`, `tokenizer`, `transformer`, `sample` or `evaluate`",
    "seed": "base random seed of every stage (data order, initialisation, masking, sampling)",
    # data
    "data.name": "dataset: `shapes` (embedded) or `mugen` (configs/mugen.py)",
    "data.source": "`tfds`: build the TFDS dataset once and read it; `stream`: generate clips on "
                   "the fly (unlimited, never stored)",
    "data.data_dir": "TFDS data directory; empty means `WORKDIR/tfds`",
    "data.image_size": "frame height and width in pixels",
    "data.num_frames": "frames per training video (T)",
    "data.frame_step": "stride between sampled frames",
    "data.motion_grid": "Shapes: 0 = smooth motion; G > 0 = centres on a G-pixel grid, one G step "
                        "per frame per axis (set `clip_frames = num_frames`); checked",
    "data.clip_frames": "frames stored per clip; training samples `num_frames` at `frame_step` "
                        "from a random start",
    "data.background": "`plain` (black) or `random` (dim textured backgrounds, needed for the "
                       "background control)",
    "data.num_train": "training clips",
    "data.num_validation": "validation clips",
    "data.num_test": "held-out test clips (captions for the sample and evaluate stages)",
    "data.generator_seed": "seed of the Shapes generator (which clips exist)",
    "data.text_seq_len": "text tokens per caption (longer captions are truncated)",
    "data.text_tokenizer": "`sentencepiece` (trained on the captions by the data stage) or `bert` "
                           "(WordPiece of the packaged MiniLM)",
    "data.sentencepiece_vocab_size": "sentencepiece BPE pieces",
    "data.drop_sentence": "MMVID sentence dropout on training captions",
    "data.null_caption_prob": "probability a training caption is replaced by the null caption "
                              "(enables classifier-free guidance)",
    "data.shuffle_buffer": "shuffle buffer of the input pipeline (clips)",
    "data.prefetch": "batches prefetched to the devices",
    # tokenizer
    "tokenizer.quantizer": "`vq` (vector quantisation) or `fsq` (finite scalar quantisation)",
    "tokenizer.codebook_size": "VQ codes (FSQ has `prod(fsq_levels)` codes)",
    "tokenizer.fsq_levels": "FSQ levels per latent channel",
    "tokenizer.embed_dim": "VQ code dimension",
    "tokenizer.channels": "base width of the encoder and decoder",
    "tokenizer.channel_mult": "width multiplier per resolution level; downsampling factor = "
                              "2^(levels - 1)",
    "tokenizer.num_res_blocks": "residual blocks per level",
    "tokenizer.encoder_context": "what each latent sees: 'global' (taming: GroupNorm and mid-block "
                                 "attention, the whole frame), 'local' (per-position norm, no "
                                 "attention) or 'patch' (only its own f x f patch, so equal "
                                 "patches get equal codes; the Shapes default)",
    "tokenizer.attn_resolutions": "feature-map sizes with an attention block (the mid block always "
                                  "has one)",
    "tokenizer.dropout": "dropout rate in residual blocks",
    "tokenizer.downsample_factor": "derived from `channel_mult`; checked",
    "tokenizer.latent_size": "tokens per frame side, `image_size / downsample_factor`; checked",
    "tokenizer.beta": "VQ commitment loss weight",
    "tokenizer.l2_normalize": "l2-normalised codes and encoder outputs (cosine lookup)",
    "tokenizer.ema": "update the codebook by exponential moving averages instead of gradients",
    "tokenizer.ema_decay": "decay of the EMA codebook",
    "tokenizer.dead_code_restart": "re-initialise rarely used codes from encoder outputs",
    "tokenizer.dead_code_threshold": "a code is dead below this fraction of uniform usage",
    "tokenizer.usage_decay": "decay of the running code-usage estimate",
    "tokenizer.restart_by_error": "draw restart vectors in proportion to their VQ error "
                                  "(k-means++ style) instead of uniformly",
    "tokenizer.recon_loss": "reconstruction loss, `l1` or `l2`",
    "tokenizer.perceptual_weight": "LPIPS loss weight (0 = off; taming uses 1.0)",
    "tokenizer.lpips_net": "LPIPS network for the training loss, `vgg16` or `alexnet`",
    "tokenizer.eval_lpips_net": "LPIPS network for evaluation",
    "tokenizer.disc_start": "step at which the GAN loss starts (10^9 = off)",
    "tokenizer.disc_weight": "generator adversarial loss weight",
    "tokenizer.disc_loss": "`hinge` or `non_saturating`",
    "tokenizer.disc_channels": "PatchGAN base width",
    "tokenizer.disc_layers": "PatchGAN layers",
    "tokenizer.disc_norm": "PatchGAN normalisation, `group` or `none`",
    "tokenizer.disc_learning_rate": "discriminator learning rate",
    "tokenizer.adaptive_disc_weight": "taming's adaptive weight (ratio of gradient norms)",
    "tokenizer.r1_weight": "R1 gradient penalty weight",
    "tokenizer.lecam_weight": "LeCAM regulariser weight",
    "tokenizer.codebook_weight": "codebook loss weight",
    "tokenizer.batch_size": "clips per training step (global)",
    "tokenizer.frames_per_clip": "random frames per clip in each training batch",
    "tokenizer.num_steps": "training steps",
    "tokenizer.learning_rate": "peak learning rate (Adam)",
    "tokenizer.adam_b1": "Adam beta1",
    "tokenizer.adam_b2": "Adam beta2",
    "tokenizer.grad_clip_norm": "global gradient-norm clip (0 = off)",
    "tokenizer.warmup_steps": "linear learning-rate warm-up steps",
    "tokenizer.ema_params_decay": "decay of the EMA of generator weights (the exported weights)",
    "tokenizer.log_every": "steps between progress lines and TensorBoard scalars",
    "tokenizer.eval_every": "steps between evaluations (reconstructions to TensorBoard)",
    "tokenizer.checkpoint_every": "steps between checkpoints",
    "tokenizer.max_to_keep": "checkpoints kept",
    "tokenizer.num_eval_batches": "validation batches per evaluation",
    "tokenizer.eval_batch_size": "clips per evaluation batch",
    # transformer
    "transformer.width": "model width",
    "transformer.depth": "transformer blocks",
    "transformer.num_heads": "attention heads",
    "transformer.mlp_dim": "MLP hidden width",
    "transformer.activation": "MLP activation, `quick_gelu` (CLIP) or `gelu`",
    "transformer.dropout": "dropout rate",
    "transformer.scan_layers": "scan over blocks (faster compile for deep models)",
    "transformer.remat": "rematerialise block activations (less memory, more compute)",
    "transformer.remat_policy": "with remat, what each block keeps for the backward pass: full | attention | dots",
    "transformer.compute_dtype": "training compute precision, `float32` or `bfloat16` (bf16 matmuls "
                                 "and activations, fp32 params/LayerNorm/softmax/losses)",
    "transformer.attention": "attention kernel: `auto` (cuDNN fused attention on a CUDA GPU for "
                             "bf16/fp16 calls with >= 64 query rows, else einsum), `xla` (einsum "
                             "everywhere) or `cudnn` (fused wherever cuDNN can; docs/performance.md)",
    "transformer.objective": "`mmvid` (bidirectional, MSM + REL + VID) or `artv` (the causal ART-V "
                             "baseline)",
    "transformer.text_encoder": "`learned` embeddings, or the frozen MiniLM: `bert_pooled` or "
                                "`bert_tokens`",
    "transformer.embed_init_std": "embedding initialisation std",
    "transformer.dense_init": "trunk and head kernel initialiser: 'lecun' (N(0, 1/fan_in)) or "
                             "'normal' (N(0, 0.02), CLIP / GPT-2)",
    "transformer.position_init": "video axial position tables start as 'normal' (MMVID: N(0, "
                                 "embed_init_std)) or 'sincos' (a 3-D sin-cos code, neighbours "
                                 "similar; still learned)",
    "transformer.rotary": "not in MMVID: 'video_3d' also rotates each head's video queries and "
                          "keys by their (t, y, x) (rotary encoding, a quarter of the channel "
                          "pairs per axis, a quarter unrotated); 'none' = MMVID",
    "transformer.code_embedding_init": "not in MMVID: 'pixels' starts the code embedding rows "
                                       "from a random projection of each code's decoded patch, "
                                       "'pixels_and_head' also the video head's columns; "
                                       "'random' = MMVID",
    "transformer.text_summary": "not in MMVID: add a projection of the mean text embedding to "
                                "every video token's input (a direct text path beside attention)",
    "transformer.video_conv": "not in MMVID: kernel size k of a depthwise, separable k x k x k "
                              "convolution over the video tokens (t, y, x) at the start of every "
                              "block; 0 = off (MMVID); MMVID objective only",
    "transformer.controls": "control slots, each `'<source>:<erasing mode>'`; sources "
                            "first_frame, random_frame, background, same_color, same_shape; modes "
                            "keep, mask_8x8, face_8x8, centre_8x8, shape_4x4, drop",
    "transformer.insert_sep": "a [SEP] token after each control slot (MMVID's insert_sep)",
    "transformer.separate_control_embedding": "own embedding table for control codes",
    "transformer.msm_strategy_prob": "probabilities of MMVID's four MSM masking strategies",
    "transformer.msm_bernoulli_keep": "keep-probability range of the Bernoulli MSM strategy",
    "transformer.mask_ratio_schedule": "`mmvid` or `cosine` (MaskGIT) masking-ratio schedule",
    "transformer.beta_msm": "weight of the masked-sequence-modelling loss",
    "transformer.beta_rel": "weight of the relevance ([REL]) loss",
    "transformer.beta_vid": "weight of the video-consistency ([VID]) loss",
    "transformer.vid_strategy_prob": "probabilities of the four VID negative-video strategies",
    "transformer.msm_corrupt_prob": "not in MMVID: share of shown video tokens replaced by codes "
                                    "from elsewhere in the batch and predicted like masked ones "
                                    "(training only); checked",
    "transformer.msm_preserve_prob": "MMVID's pc_prob (0 in its scripts): share of training "
                                     "samples that also show 1..T/2 random whole frames",
    "transformer.vid_skip_identical": "not in MMVID: no VID loss for a negative whose visible "
                                      "tokens equal its positive's (evaluation still scores "
                                      "every pair)",
    "transformer.negatives": "`all`: REL and VID negative passes for every sample (MMVID); "
                             "`split`: half the batch each",
    "transformer.batch_size": "videos per training step (global)",
    "transformer.num_steps": "training steps",
    "transformer.learning_rate": "peak learning rate",
    "transformer.lr_schedule": "`log_warmup` (MMVID), `cosine` or `constant`",
    "transformer.warmup_steps": "learning-rate warm-up steps",
    "transformer.min_learning_rate": "final learning rate of the decay",
    "transformer.grad_clip_norm": "global gradient-norm clip (0 = off)",
    "transformer.ema_decay": "not in MMVID: decay of a moving average of the parameters that "
                             "validation and the export use (0 = off: the last parameters)",
    "transformer.log_every": "steps between progress lines and TensorBoard scalars",
    "transformer.eval_every": "steps between evaluations (generated videos to TensorBoard)",
    "transformer.checkpoint_every": "steps between checkpoints",
    "transformer.max_to_keep": "checkpoints kept",
    "transformer.num_eval_batches": "validation batches per evaluation",
    # sample
    "sample.decoder": "`mask_predict` (MMVID), `maskgit` or `ar` (ART-V models)",
    "sample.steps": "decoding steps",
    "sample.num_candidates": "mask-predict: candidate masks per step, reranked by REL/VID (B)",
    "sample.dynamic_stop": "mask-predict: keep the best-scored video, stop after 5 flat steps",
    "sample.score_on": "where candidates are scored: `completed` videos or `masked` inputs "
                       "(MMVID's code)",
    "sample.cfg_scale": "classifier-free guidance scale from the null caption (0 = off)",
    "sample.temperature": "softmax temperature of the token draws, every decoder (1 = MMVID)",
    "sample.top_k": "ART-V top-k filter (0 = off)",
    "sample.choice_temperature": "MaskGIT re-masking noise",
    "sample.noise_schedule": "mask-predict Gumbel-noise schedule (alpha1, beta1, alpha2, alpha3); "
                             "zeros = MMVID's default",
    "sample.dtype": "transformer compute precision, `float32` or `bfloat16`",
    "sample.num_samples": "videos per caption",
    "sample.num_prompts": "test captions the sample stage generates for",
    "sample.batch_size": "videos per generation call",
    "sample.num_clips": "sampling command: clips of an extrapolated long video (1 = a normal "
                        "video; `--num_clips`)",
    "sample.t_overlap": "sampling command: frames each clip keeps from the previous one "
                        "(-1 = half the clip, 0 = independent clips; MMVID iPER: 7 of 8; `--t_overlap`)",
    "sample.interp_levels": "sampling command `--interpolate`: frame-rate doublings "
                            "(2 = 4x, MMVID `--t_repeat 2`)",
    # evaluate
    "evaluate.split": "split whose clips are the references (the first `num_videos`)",
    "evaluate.num_videos": "generated videos (one per reference clip)",
    "evaluate.batch_size": "generation / tokenizer / REL batch",
    "evaluate.compare": "decoder settings to compare, `<decoder>[_b<B>][_s<steps>][_c<cfg>][_f<given frames>]`; empty = "
                        "`sample.decoder`",
    "evaluate.ar_workdir": "workdir of an ART-V run for the `ar` entry of `compare`",
    "evaluate.fvd": "compute FVD and PRD with the packaged I3D (slow on CPU)",
    "evaluate.i3d_batch_size": "I3D batch (16 in the FVD protocol)",
    "evaluate.prd_clusters": "PRD k-means clusters",
    "evaluate.prd_angles": "PRD curve resolution",
    "evaluate.prd_runs": "PRD runs averaged",
    "evaluate.lpips_net": "LPIPS network, `alexnet` or `vgg16`",
    "evaluate.num_gallery": "videos per setting in TensorBoard and the comparison GIFs",
    "evaluate.protocol": "`default` (the measures above) or `mmvid` (the paper's FVD/PRD "
                         "protocol, docs/evaluation.md#paper-protocol)",
    "evaluate.eval_num": "protocol `mmvid`: clips evaluated (all of the split when it holds "
                         "fewer)",
    "evaluate.protocol_decoders": "protocol `mmvid`: methods (`mmvid`, `artv`, ...); empty = "
                                  "every method a trained model exists for",
    # mesh
    "mesh.data": "data-parallel axis size (-1 = all remaining devices)",
    "mesh.fsdp": "parameter-sharding (FSDP) axis size",
    "mesh.model": "tensor-parallel axis size",
    "mesh.logical_axis_rules": "logical array axis -> mesh axes (None = replicated), first match "
                               "wins (docs/performance.md)",
}


def load_shapes(variant: str):
  spec = importlib.util.spec_from_file_location("shapes_config",
                                                os.path.join(ROOT, "configs", "shapes.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant), module.VARIANTS


def flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = value
  return flat


def _value(value) -> str:
  if isinstance(value, str):
    return f"`{value!r}`" if value else "`''`"
  text = repr(tuple(value)) if isinstance(value, (list, tuple)) else repr(value)
  return f"`{text}`".replace("|", "\\|")


def render() -> str:
  default, variants = load_shapes("default")
  flat = {name: flatten(load_shapes(name)[0].to_dict()) for name in variants}
  keys = list(flatten(default.to_dict()))
  lines = [
      "# Config reference",
      "",
      "Every key of `configs/shapes.py` with its default, its value in the `tiny` variant (tests, "
      "the demo notebook) when different, and what it means. Override any key on the command line "
      "with `--config.<key>=<value>`; a run writes the resolved config to `WORKDIR/config.json`. "
      "Values are checked before any compute (`mmvid_jax/configuration.py`); a bad one stops with "
      "one line naming the key and the fix (see [troubleshooting.md](troubleshooting.md)).",
      "",
      "Generated by `python docs/config_reference.py` from the config itself; "
      "`tests/test_config_reference.py` fails when it is out of date.",
  ]
  for section, title in SECTIONS.items():
    section_keys = [k for k in keys if (k.split(".")[0] == section if section else "." not in k)]
    lines += ["", f"## {title}", "", "| key | default | tiny | meaning |", "|---|---|---|---|"]
    for key in section_keys:
      tiny = flat["tiny"][key]
      tiny_text = "" if tiny == flat["default"][key] else _value(tiny)
      lines.append(f"| `{key}` | {_value(flat['default'][key])} | {tiny_text} | "
                   f"{MEANINGS.get(key, '')} |")
  lines += ["", "## What the other variants change", "",
            "| variant | key | value |", "|---|---|---|"]
  for name in variants:
    if name in ("default", "tiny"):
      continue
    for key in keys:
      if key not in ("experiment", "variant") and flat[name][key] != flat["default"][key]:
        lines.append(f"| `{name}` | `{key}` | {_value(flat[name][key])} |")
  lines += ["", "MUGEN has its own config, `configs/mugen.py` (see [mugen.md](mugen.md)).", ""]
  return "\n".join(lines)


def main(argv) -> int:
  text = render()
  if "--check" in argv:
    with open(OUTPUT, encoding="utf-8") as f:
      if f.read() != text:
        print(f"{OUTPUT} is out of date: run python docs/config_reference.py", file=sys.stderr)
        return 1
    return 0
  with open(OUTPUT, "w", encoding="utf-8") as f:
    f.write(text)
  print(f"Wrote {OUTPUT}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
