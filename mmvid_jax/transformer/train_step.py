"""The transformer's jitted training and evaluation steps (MSM + REL + VID, or ART-V).

Per MMVID step (spec §4.1), everything random comes from `fold_in(base_key, step)`:
1. frames -> codes with the frozen tokenizer; controls -> codes -> erased (one draw per slot);
2. MSM keep mask per sample; masked positions become [MASK];
3. VID negatives in pixel space, re-tokenized (only the edited frame: the tokenizer is per
   frame), the same mask applied;
4. one trunk call on three passes per sample: (condition, masked video) -> MSM + REL+ + VID+,
   (swapped condition, masked video) -> REL-, (condition, masked negative video) -> VID-.
   The vocabulary head runs on the first pass only.
"""

import dataclasses
from typing import Any, NamedTuple

from flax import struct
import jax
import jax.numpy as jnp
import optax

from mmvid_jax.transformer import controls as controls_lib
from mmvid_jax.transformer import losses
from mmvid_jax.transformer import masking
from mmvid_jax.transformer import negatives
from mmvid_jax.transformer.vocab import Layout


@dataclasses.dataclass(frozen=True)
class StepSettings:
  """Typed settings of the objective, from `config.transformer` (see `settings_from_config`)."""
  objective: str = "mmvid"  # or "artv"
  mask_schedule: str = "mmvid"  # or "cosine"
  msm_strategy_prob: tuple[float, ...] = (0.7, 0.1, 0.1, 0.1)
  bernoulli_keep: tuple[float, float] = (0.2, 0.2)
  preserve_prob: float = 0.0  # MMVID's pc_prob: whole frames shown on top of the mask (training)
  vid_strategy_prob: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)
  beta_msm: float = 7.0
  beta_rel: float = 0.5
  beta_vid: float = 0.5
  control_modes: tuple[str, ...] = ()
  artv_video_weight: float = 7.0
  # "all": every sample gets a REL and a VID negative pass (MMVID, 3 passes per sample);
  # "split": the first half of the batch gets the REL negative, the second half the VID one
  # (2 passes per sample, a third fewer FLOPs, half the negatives per step).
  negatives: str = "all"
  # Not in MMVID: a VID negative that shows the model exactly the tokens of its positive (the
  # edit fell on masked tokens, or changed no code) gets no VID loss: it would be trained as
  # both consistent and inconsistent. Evaluation still scores every pair.
  vid_skip_identical: bool = False
  # Not in MMVID: the share of shown video tokens replaced by a code from elsewhere in the batch
  # (training only) and predicted like masked ones, so the model learns to overrule wrong
  # tokens, as mask-predict needs when it keeps its own earlier draws.
  corrupt_prob: float = 0.0


def settings_from_config(tr) -> StepSettings:
  return StepSettings(
      objective=str(tr.get("objective", "mmvid")),
      mask_schedule=str(tr.mask_ratio_schedule),
      msm_strategy_prob=tuple(float(p) for p in tr.msm_strategy_prob),
      bernoulli_keep=tuple(float(p) for p in tr.msm_bernoulli_keep),
      preserve_prob=float(tr.get("msm_preserve_prob", 0.0)),
      vid_strategy_prob=tuple(float(p) for p in tr.vid_strategy_prob),
      beta_msm=float(tr.beta_msm), beta_rel=float(tr.beta_rel), beta_vid=float(tr.beta_vid),
      control_modes=tuple(mode for _, mode in controls_lib.parse_slots(tr.get("controls", ()))),
      negatives=str(tr.get("negatives", "all")),
      vid_skip_identical=bool(tr.get("vid_skip_identical", False)),
      corrupt_prob=float(tr.get("msm_corrupt_prob", 0.0)))


class TrainState(struct.PyTreeNode):
  step: jax.Array
  params: Any
  opt_state: Any
  tx: optax.GradientTransformation = struct.field(pytree_node=False)


def build_schedule(tr, total_steps: int):
  return losses.make_schedule(str(tr.lr_schedule), float(tr.learning_rate),
                              int(tr.warmup_steps), total_steps, float(tr.min_learning_rate))


class ParamsEmaState(NamedTuple):
  count: jax.Array
  ema: Any


def params_ema(decay: float) -> optax.GradientTransformation:
  """Passes the updates through and keeps an exponential moving average of the parameters
  they produce. It lives in the optimizer state, so it is checkpointed, restored and sharded
  like Adam's moments. The decay warms up as min(decay, (1 + t) / (10 + t)): early on the
  average follows the parameters instead of remembering their random start."""

  def init_fn(params):
    return ParamsEmaState(count=jnp.zeros((), jnp.int32),
                          ema=jax.tree_util.tree_map(lambda p: p.astype(jnp.float32), params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("params_ema needs the parameters: call tx.update(grads, state, params)")
    t = state.count.astype(jnp.float32)
    rate = 1.0 - jnp.minimum(decay, (1.0 + t) / (10.0 + t))
    ema = jax.tree_util.tree_map(lambda e, p, u: e + rate * (p + u - e), state.ema, params,
                                 updates)
    return updates, ParamsEmaState(count=state.count + 1, ema=ema)

  return optax.GradientTransformation(init_fn, update_fn)


def build_optimizer(tr, total_steps: int) -> optax.GradientTransformation:
  """Adam(0.9, 0.999, 1e-8) with global-norm clipping and the configured schedule, plus the
  parameters' moving average when `transformer.ema_decay` > 0."""
  schedule = build_schedule(tr, total_steps)
  parts = [optax.clip_by_global_norm(float(tr.grad_clip_norm)),
           optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
           optax.scale_by_learning_rate(schedule)]
  decay = float(tr.get("ema_decay", 0.0))
  if decay > 0:
    parts.append(params_ema(decay))
  return optax.chain(*parts)


def evaluation_params(state: TrainState):
  """The parameters validation scores and the export keeps: the moving average when the
  optimizer keeps one (`transformer.ema_decay` > 0), the trained parameters otherwise."""
  for part in state.opt_state if isinstance(state.opt_state, tuple) else ():
    if isinstance(part, ParamsEmaState):
      return part.ema
  return state.params


def video_to_float(video: jax.Array) -> jax.Array:
  return video.astype(jnp.float32) / 127.5 - 1.0


def prepare_inputs(layout: Layout, settings: StepSettings, tokenizer, text_encoder,
                   batch: dict, key: jax.Array, train: bool = True) -> dict:
  """Everything the losses need that does not depend on the parameters (no gradient)."""
  k_mask, k_vid, k_ctrl = jax.random.split(key, 3)
  video = video_to_float(batch["video"])
  frame_codes = tokenizer.encode_to_codes(video).astype(jnp.int32)  # (B, T, h, w)
  codes = frame_codes.reshape(frame_codes.shape[0], -1)
  text_ids = batch["text_ids"].astype(jnp.int32)
  out = {"text_ids": text_ids, "codes": codes, "control_codes": None, "text_features": None}
  if layout.num_controls:
    control_codes = controls_lib.tokenize_controls(tokenizer, batch["controls"])
    out["control_codes"] = controls_lib.erase_controls(
        control_codes, settings.control_modes, layout.mask_id, k_ctrl, train)
  if text_encoder is not None:
    out["text_features"] = text_encoder(text_ids)
  if settings.objective == "artv":
    return out
  keep = masking.batch_keep_mask(k_mask, codes.shape[0], layout.num_frames,
                                 layout.latent_height, layout.latent_width,
                                 settings.mask_schedule, settings.msm_strategy_prob,
                                 settings.bernoulli_keep, settings.preserve_prob)
  # The per-frame tokenizer re-encodes only the one edited frame of each negative.
  encode = lambda frames: tokenizer.encode_to_codes(frames).astype(jnp.int32)
  negative_codes, vid_strategy = negatives.batch_vid_negative_codes(
      k_vid, video, frame_codes, encode, settings.vid_strategy_prob)
  negative_codes = negative_codes.reshape(codes.shape)
  masked = jnp.where(keep, codes, layout.mask_id)
  masked_negative = jnp.where(keep, negative_codes, layout.mask_id)
  if train and settings.corrupt_prob:
    corrupted, noise = masking.corrupt_shown_tokens(jax.random.fold_in(key, 3), codes, keep,
                                                    settings.corrupt_prob)
    # The same wrong tokens in both videos: the VID pair still differs only by its edit.
    masked = jnp.where(corrupted, noise, masked)
    masked_negative = jnp.where(corrupted, noise, masked_negative)
    keep = keep & ~corrupted  # predicted (and scored) like masked tokens
  out.update(keep=keep, masked=masked, masked_negative=masked_negative,
             negative_codes=negative_codes, vid_strategy=vid_strategy)
  return out


def _swap(tree, permutation):
  return jax.tree_util.tree_map(lambda x: None if x is None else x[permutation], tree)


def mmvid_loss(model, params, inputs: dict, settings: StepSettings) -> tuple[jax.Array, dict]:
  """All passes in one trunk call (head on the positive pass only); (total loss, metrics)."""
  batch = inputs["codes"].shape[0]
  permutation = negatives.rel_swap_permutation(batch)
  apply = lambda *a, **k: model.apply({"params": params}, *a, **k)
  condition = apply(inputs["text_ids"], inputs["control_codes"], inputs["text_features"],
                    method=model.embed_condition)
  swapped = _swap(condition, permutation)
  masked, masked_negative = inputs["masked"], inputs["masked_negative"]
  weights = ~masking.fully_masked(inputs["keep"])
  if settings.negatives == "split":
    rel_half = jnp.arange(batch) < batch // 2
    negative_condition = jnp.where(rel_half[:, None, None], swapped, condition)
    negative_video = jnp.where(rel_half[:, None], masked, masked_negative)
    passes_condition = jnp.stack([condition, negative_condition], axis=1)
    passes_video = jnp.stack([masked, negative_video], axis=1)
    rel_pass = vid_pass = 1
    rel_weights, vid_weights = weights & rel_half, weights & ~rel_half
  else:
    passes_condition = jnp.stack([condition, swapped, condition], axis=1)
    passes_video = jnp.stack([masked, masked, masked_negative], axis=1)
    rel_pass, vid_pass = 1, 2
    rel_weights = vid_weights = weights
  if settings.vid_skip_identical:
    vid_weights = vid_weights & jnp.any(masked != masked_negative, axis=1)
  logits, rel, vid = apply(passes_condition, passes_video, vocab_passes=1,
                           prune_last_layer=True)
  msm, msm_acc, masked_count = losses.msm_loss(logits[:, 0], inputs["codes"], inputs["keep"])
  rel_loss, rel_acc = losses.pair_bce_loss(rel[:, 0], rel[:, rel_pass], rel_weights)
  vid_loss, vid_acc = losses.pair_bce_loss(vid[:, 0], vid[:, vid_pass], vid_weights)
  total = settings.beta_msm * msm + settings.beta_rel * rel_loss + settings.beta_vid * vid_loss
  return total, {"loss": total, "msm_loss": msm, "msm_accuracy": msm_acc, "rel_loss": rel_loss,
                 "rel_accuracy": rel_acc, "vid_loss": vid_loss, "vid_accuracy": vid_acc,
                 "masked_tokens": masked_count}


def artv_targets(layout: Layout, inputs: dict) -> tuple[jax.Array, jax.Array | None]:
  """Text targets with position-specific pad ids; control targets with [SEP] when inserted."""
  text_ids = inputs["text_ids"]
  pad_ids = layout.text_vocab_size + jnp.arange(layout.text_len, dtype=text_ids.dtype)
  text_targets = jnp.where(text_ids == 0, pad_ids, text_ids)
  control_targets = None
  if layout.num_controls:
    codes = inputs["control_codes"].reshape(text_ids.shape[0], layout.num_controls, -1)
    if layout.insert_sep:
      sep = jnp.full(codes.shape[:2] + (1,), layout.sep_id, codes.dtype)
      codes = jnp.concatenate([codes, sep], axis=2)
    control_targets = codes.reshape(text_ids.shape[0], -1)
  return text_targets, control_targets


def artv_step_loss(model, params, inputs: dict, settings: StepSettings):
  logits = model.apply({"params": params}, inputs["text_ids"], inputs["control_codes"],
                       inputs["codes"])
  text_targets, control_targets = artv_targets(model.layout, inputs)
  loss, metrics = losses.artv_loss(logits, text_targets, control_targets, inputs["codes"],
                                   settings.artv_video_weight)
  return loss, {"loss": loss, **metrics}


def make_train_step(model, layout: Layout, settings: StepSettings, base_key: jax.Array,
                    schedule=None):
  """(state, batch, frozen=(tokenizer, text_encoder)) -> (state, metrics); jit it outside."""
  loss_fn = artv_step_loss if settings.objective == "artv" else mmvid_loss

  def train_step(state: TrainState, batch: dict, frozen):
    tokenizer, text_encoder = frozen
    key = jax.random.fold_in(base_key, state.step)
    inputs = prepare_inputs(layout, settings, tokenizer, text_encoder, batch, key)
    grad_fn = jax.value_and_grad(lambda p: loss_fn(model, p, inputs, settings), has_aux=True)
    (_, metrics), grads = grad_fn(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=optax.global_norm(grads))
    if schedule is not None:
      metrics["learning_rate"] = jnp.asarray(schedule(state.step), jnp.float32)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


UNMASKED_METRICS = ("rel_loss", "rel_accuracy", "vid_loss", "vid_accuracy")


def evaluation_settings(settings: StepSettings) -> StepSettings:
  """What validation scores: every sample both ways, every VID pair, on MMVID's masks without
  preserved frames, so validation figures compare across training options."""
  return dataclasses.replace(settings, negatives="all", vid_skip_identical=False,
                             preserve_prob=0.0, corrupt_prob=0.0)


def make_eval_step(model, layout: Layout, settings: StepSettings):
  """(params, batch, frozen, key) -> metric sums over the batch (fixed masks from `key`).

  MMVID models are also scored on the complete videos (no token masked): `<metric>_unmasked`
  for the REL and VID losses and accuracies, what the reranker of `mask_predict` relies on when
  it scores finished candidates.
  """
  artv = settings.objective == "artv"
  loss_fn = artv_step_loss if artv else mmvid_loss
  settings = evaluation_settings(settings)

  def eval_step(params, batch: dict, frozen, key):
    tokenizer, text_encoder = frozen
    inputs = prepare_inputs(layout, settings, tokenizer, text_encoder, batch, key, train=False)
    _, metrics = loss_fn(model, params, inputs, settings)
    if not artv:
      complete = dict(inputs, keep=jnp.ones_like(inputs["keep"]), masked=inputs["codes"],
                      masked_negative=inputs["negative_codes"])
      _, unmasked = loss_fn(model, params, complete, settings)
      metrics = dict(metrics, **{f"{k}_unmasked": unmasked[k] for k in UNMASKED_METRICS})
      # How well any model could do: a VID negative that shows the same tokens as its positive
      # cannot be told apart (benchmarks/vid_ceiling.py breaks this down per negative kind).
      counted = ~masking.fully_masked(inputs["keep"])
      metrics["vid_ceiling"] = losses.pair_accuracy_ceiling(
          inputs["masked"], inputs["masked_negative"], counted)
      metrics["vid_ceiling_unmasked"] = losses.pair_accuracy_ceiling(
          inputs["codes"], inputs["negative_codes"], jnp.ones_like(counted))
    return metrics

  return eval_step
