"""The tokenizer's train state and its one jitted step (generator and discriminator together).

`make_train_step(...)` returns `step_fn(state, batch, step, lpips_variables) -> (state, metrics)`,
a pure function: the step key is `fold_in(base_key, step)`, so a resumed run repeats the
same random choices (frames, dead-code replacements) as an uninterrupted one.
"""

from typing import Any

import flax.linen as nn
from flax import struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from mmvid_jax.evaluation import image_metrics
from mmvid_jax.tokenizer import losses
from mmvid_jax.tokenizer.discriminator import NLayerDiscriminator
from mmvid_jax.tokenizer.model import VQGAN
from mmvid_jax.tokenizer.quantizers import restart_dead_codes

MUTABLE = ["vq_stats", "vq_ema"]


class TrainState(struct.PyTreeNode):
  """Every array the trainer carries; optimisers and modules live in the closure."""
  params: Any            # generator params
  model_state: Any       # generator collections other than params (vq_stats, vq_ema)
  opt_state: Any
  ema_params: Any        # EMA of generator params, used for evaluation and export
  disc_params: Any       # {} when the GAN is off for the whole run
  disc_opt_state: Any
  lecam_ema: jax.Array   # EMA of mean D(real), D(fake)


def gan_enabled(tok: ml_collections.ConfigDict) -> bool:
  """The discriminator exists only if it starts before the run ends."""
  return tok.disc_weight > 0 and tok.disc_start < tok.num_steps


def build_discriminator(tok: ml_collections.ConfigDict) -> NLayerDiscriminator:
  return NLayerDiscriminator(ndf=int(tok.get("disc_channels", 64)),
                             num_layers=int(tok.get("disc_layers", 3)),
                             norm=tok.get("disc_norm", "group"))


def build_optimizer(tok: ml_collections.ConfigDict, learning_rate: float) -> optax.GradientTransformation:
  """Adam(β1, β2) with linear warm-up then cosine decay to 10%, optional global-norm clipping."""
  total = max(int(tok.num_steps), 2)
  # A run shorter than its warm-up (e.g. a quick num_steps override) warms up until its last step.
  warmup = min(max(int(tok.warmup_steps), 1), total - 1)
  schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup, total,
                                                end_value=0.1 * learning_rate)
  adam = optax.adam(schedule, b1=float(tok.get("adam_b1", 0.5)), b2=float(tok.get("adam_b2", 0.9)))
  clip = float(tok.get("grad_clip_norm", 0.0))
  return optax.chain(optax.clip_by_global_norm(clip), adam) if clip > 0 else adam


def init_state(model: VQGAN, disc: NLayerDiscriminator | None, gen_tx, disc_tx, key,
               image_size: int) -> TrainState:
  gen_key, disc_key = jax.random.split(key)
  images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  variables = model.init(gen_key, images)
  params = variables["params"]
  model_state = {k: v for k, v in variables.items() if k != "params"}
  disc_params = disc.init(disc_key, images)["params"] if disc is not None else {}
  return TrainState(
      params=params, model_state=model_state, opt_state=gen_tx.init(params),
      ema_params=jax.tree_util.tree_map(jnp.copy, params), disc_params=disc_params,
      disc_opt_state=disc_tx.init(disc_params) if disc is not None else {},
      lecam_ema=jnp.zeros((2,), jnp.float32))


def video_to_float(video):
  """uint8 [0, 255] → float32 [-1, 1]."""
  return video.astype(jnp.float32) / 127.5 - 1.0


def sample_frames(video, frames_per_clip: int, key):
  """Picks `frames_per_clip` random frames from each clip: (B, T, ...) → (B*F, ...)."""
  b, t = video.shape[:2]
  if frames_per_clip >= t:
    return video.reshape((b * t,) + video.shape[2:])
  picks = jax.random.randint(key, (b, frames_per_clip), 0, t)
  chosen = jnp.take_along_axis(video, picks.reshape(b, frames_per_clip, 1, 1, 1), axis=1)
  return chosen.reshape((b * frames_per_clip,) + video.shape[2:])


def last_layer_grad(features, kernel, bias, output_grad):
  """∂L/∂kernel of the 3x3 output conv, given ∂L/∂output (features held constant)."""
  conv = nn.Conv(kernel.shape[-1], kernel.shape[:2])
  _, vjp = jax.vjp(lambda k: conv.apply({"params": {"kernel": k, "bias": bias}}, features), kernel)
  return vjp(output_grad)[0]


def _replace_codebook(tree, codebook):
  return {**tree, "quantizer": {**tree["quantizer"], "codebook": codebook}}


def _ema_update(ema, params, decay: float):
  new = jax.tree_util.tree_map(lambda e, p: decay * e + (1 - decay) * p, ema, params)
  if "codebook" in params.get("quantizer", {}):
    # Codes jump on dead-code restarts; averaging them would blend unrelated vectors.
    new = _replace_codebook(new, params["quantizer"]["codebook"])
  return new


def make_train_step(tok: ml_collections.ConfigDict, model: VQGAN,
                    disc: NLayerDiscriminator | None, gen_tx, disc_tx, lpips_module, base_key):
  """Builds the pure step function (jit it with shardings in the trainer)."""
  use_gan = disc is not None
  use_perceptual = float(tok.perceptual_weight) > 0
  frames_per_clip = int(tok.get("frames_per_clip", 2))
  restart = tok.quantizer == "vq" and bool(tok.dead_code_restart)
  lecam_decay = 0.99

  def nll_of(x, recon, lpips_variables):
    rec = losses.reconstruction_loss(x, recon, tok.recon_loss)
    perceptual = (jnp.mean(image_metrics.lpips_with(lpips_module, lpips_variables, x, recon))
                  if use_perceptual else jnp.zeros((), jnp.float32))
    return rec + float(tok.perceptual_weight) * perceptual, (rec, perceptual)

  def disc_apply(disc_params, images):
    return disc.apply({"params": disc_params}, images)

  def generator_loss(params, state, x, disc_active, lpips_variables):
    (recon, aux), new_model_state = model.apply(
        {"params": params, **state.model_state}, x, train=True, mutable=MUTABLE)
    nll, (rec, perceptual) = nll_of(x, recon, lpips_variables)
    total = nll + float(tok.codebook_weight) * aux["loss"]
    g_adv = jnp.zeros((), jnp.float32)
    weight = jnp.zeros((), jnp.float32)
    if use_gan:
      g_adv = jax.lax.cond(
          disc_active,
          lambda r: losses.generator_adversarial_loss(disc_apply(state.disc_params, r), tok.disc_loss),
          lambda r: jnp.zeros((), jnp.float32), recon)

      def adaptive(_):
        y = jax.lax.stop_gradient(recon)
        h = jax.lax.stop_gradient(aux["decoder_features"])
        kernel, bias = params["conv_out"]["kernel"], params["conv_out"]["bias"]
        nll_grad = jax.grad(lambda r: nll_of(x, r, lpips_variables)[0])(y)
        gan_grad = jax.grad(lambda r: losses.generator_adversarial_loss(
            disc_apply(state.disc_params, r), tok.disc_loss))(y)
        return losses.adaptive_generator_weight(
            last_layer_grad(h, kernel, bias, nll_grad), last_layer_grad(h, kernel, bias, gan_grad),
            float(tok.disc_weight))

      if tok.adaptive_disc_weight:
        weight = jax.lax.cond(disc_active, adaptive, lambda _: jnp.zeros((), jnp.float32), None)
      else:
        weight = jnp.where(disc_active, float(tok.disc_weight), 0.0)
      total = total + weight * g_adv
    metrics = {"rec_loss": rec, "perceptual_loss": perceptual, "codebook_loss": aux["loss"],
               "g_adv_loss": g_adv, "adaptive_weight": weight, "perplexity": aux["perplexity"],
               "code_usage": aux["usage"],
               "psnr": jnp.mean(image_metrics.psnr(x, jnp.clip(recon, -1, 1)))}
    return total, (recon, (aux["latents"], aux.get("errors")), new_model_state, metrics)

  def discriminator_loss(disc_params, x, fake, lecam_ema, disc_active):
    real_logits = disc_apply(disc_params, x)
    fake_logits = disc_apply(disc_params, fake)
    loss = losses.discriminator_loss(real_logits, fake_logits, tok.disc_loss)
    if tok.r1_weight > 0:
      loss = loss + float(tok.r1_weight) * losses.r1_penalty(lambda im: disc_apply(disc_params, im), x)
    if tok.lecam_weight > 0:
      loss = loss + float(tok.lecam_weight) * losses.lecam_regularizer(
          real_logits, fake_logits, lecam_ema[0], lecam_ema[1])
    means = jnp.stack([jnp.mean(real_logits), jnp.mean(fake_logits)])
    return jnp.where(disc_active, loss, 0.0), means

  def step_fn(state: TrainState, batch, step, lpips_variables):
    key = jax.random.fold_in(base_key, step)
    frame_key, restart_key = jax.random.split(key)
    x = video_to_float(sample_frames(batch["video"], frames_per_clip, frame_key))
    disc_active = jnp.asarray(step >= int(tok.disc_start)) if use_gan else jnp.asarray(False)

    grad_fn = jax.value_and_grad(generator_loss, has_aux=True)
    (loss, (recon, latents, model_state, metrics)), grads = grad_fn(
        state.params, state, x, disc_active, lpips_variables)
    updates, opt_state = gen_tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    if restart:
      stats = model_state["vq_stats"]["quantizer"]
      in_ema = bool(tok.ema)
      codebook = (model_state["vq_ema"]["quantizer"]["codebook"] if in_ema
                  else params["quantizer"]["codebook"])
      latents, errors = latents
      codebook, usage, dead = restart_dead_codes(
          codebook, stats["usage"], jax.lax.stop_gradient(latents), restart_key,
          float(tok.get("dead_code_threshold", 0.03)),
          errors if tok.get("restart_by_error", True) else None)
      model_state = {**model_state, "vq_stats": {"quantizer": {**stats, "usage": usage}}}
      if in_ema:
        ema_vq = model_state["vq_ema"]["quantizer"]
        mean_size = jnp.mean(ema_vq["cluster_size"])
        size = jnp.where(dead, mean_size, ema_vq["cluster_size"])
        ema_vq = {"codebook": codebook, "cluster_size": size,
                  "embed_sum": jnp.where(dead[:, None], codebook * size[:, None], ema_vq["embed_sum"])}
        model_state = {**model_state, "vq_ema": {"quantizer": ema_vq}}
      else:
        params = _replace_codebook(params, codebook)
      metrics["restarted_codes"] = jnp.sum(dead).astype(jnp.float32)

    ema_params = _ema_update(state.ema_params, params, float(tok.ema_params_decay))
    disc_params, disc_opt_state, lecam_ema = state.disc_params, state.disc_opt_state, state.lecam_ema
    if use_gan:
      (d_loss, means), d_grads = jax.value_and_grad(discriminator_loss, has_aux=True)(
          state.disc_params, x, jax.lax.stop_gradient(recon), state.lecam_ema, disc_active)
      d_updates, new_disc_opt = disc_tx.update(d_grads, state.disc_opt_state, state.disc_params)
      new_disc = optax.apply_updates(state.disc_params, d_updates)
      # Before disc_start the discriminator (and its Adam moments) stay untouched.
      pick = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(disc_active, n, o), new, old)
      disc_params, disc_opt_state = pick(new_disc, disc_params), pick(new_disc_opt, disc_opt_state)
      lecam_ema = jnp.where(disc_active, lecam_decay * lecam_ema + (1 - lecam_decay) * means, lecam_ema)
      metrics.update(d_loss=d_loss, logits_real=means[0], logits_fake=means[1])

    metrics["loss"] = loss
    new_state = TrainState(params=params, model_state=model_state, opt_state=opt_state,
                           ema_params=ema_params, disc_params=disc_params,
                           disc_opt_state=disc_opt_state, lecam_ema=lecam_ema)
    return new_state, metrics

  return step_fn
