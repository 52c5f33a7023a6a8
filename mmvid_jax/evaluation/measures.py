"""The measurements of the evaluate stage, each over whole sets of uint8 videos.

- `reconstruct`: the tokenizer's encode -> decode of real clips, plus PSNR / SSIM / LPIPS per
  frame (averaged over frames and videos), via `image_metrics`.
- `RelScorer`: the transformer's [REL] head on complete (unmasked) videos: how well a video
  matches its caption and controls according to the model itself.
- `feature_metrics`: FVD and PRD between I3D features of real and generated sets.

All jitted functions run on fixed-size batches (the last one padded), so each compiles once.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.evaluation import fvd as fvd_lib
from mmvid_jax.evaluation import image_metrics
from mmvid_jax.evaluation import prd as prd_lib

# PSNR of identical frames is infinite; cap it so averages stay finite (100 dB ~ MSE 4e-10).
MAX_PSNR = 100.0


def padded_batches(arrays: dict, batch_size: int):
  """Yields (valid_count, dict of arrays padded to batch_size by repeating the last row)."""
  count = len(next(iter(arrays.values())))
  for start in range(0, count, batch_size):
    out = {}
    for key, value in arrays.items():
      chunk = value[start:start + batch_size]
      if len(chunk) < batch_size:
        pad = np.repeat(chunk[-1:], batch_size - len(chunk), axis=0)
        chunk = np.concatenate([chunk, pad])
      out[key] = chunk
    yield min(batch_size, count - start), out


def to_unit_range(videos: np.ndarray) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return jnp.asarray(videos, jnp.float32) / 127.5 - 1.0


def to_uint8(videos) -> np.ndarray:
  return np.asarray(jnp.clip(jnp.round((videos + 1.0) * 127.5), 0, 255).astype(jnp.uint8))


@functools.lru_cache(maxsize=2)
def _reconstruct_fn(lpips_net: str):
  """Jitted tokenizer round trip + per-frame PSNR / SSIM / LPIPS for one LPIPS network."""
  lpips_module, _ = image_metrics.load_lpips(lpips_net)

  @jax.jit
  def reconstruct_batch(tokenizer, lpips_variables, videos):
    real = to_unit_range(videos)
    recon = tokenizer.decode_from_codes(tokenizer.encode_to_codes(real))
    # Score the uint8 video a user would see, like the generated ones.
    recon = jnp.clip(jnp.round((recon + 1.0) * 127.5), 0, 255) / 127.5 - 1.0
    psnr = jnp.minimum(image_metrics.psnr(real, recon, data_range=2.0), MAX_PSNR)
    ssim = image_metrics.ssim(real, recon, data_range=2.0)
    lpips = image_metrics.lpips_with(lpips_module, lpips_variables, real, recon)
    return recon, psnr, ssim, lpips

  return reconstruct_batch


def reconstruct(tokenizer, videos: np.ndarray, batch_size: int, lpips_net: str = "alexnet"):
  """Returns (reconstructions uint8 (N, T, H, W, 3), {psnr, ssim, lpips} means over frames)."""
  _, lpips_variables = image_metrics.load_lpips(lpips_net)
  reconstruct_batch = _reconstruct_fn(lpips_net)
  outputs, values = [], {"psnr": [], "ssim": [], "lpips": []}
  for valid, batch in padded_batches({"video": videos}, batch_size):
    recon, psnr, ssim, lpips = reconstruct_batch(tokenizer, lpips_variables, batch["video"])
    outputs.append(to_uint8(recon)[:valid])
    for name, value in (("psnr", psnr), ("ssim", ssim), ("lpips", lpips)):
      values[name].append(np.asarray(value)[:valid])
  summary = {name: float(np.mean(np.concatenate(v))) for name, v in values.items()}
  summary["lpips_net"] = lpips_net
  return np.concatenate(outputs), summary


class RelScorer:
  """[REL] logits of complete (unmasked) videos given their captions and controls.

  Call it with real pixel videos (encoded by the tokenizer first), or use `score_tokens` with the
  video tokens a transformer generated. Generated videos must be scored on their own tokens:
  re-encoding decoded frames changes about a third of the tokens (on the Shapes default
  tokenizer the background code of decoded frames is not the code of real black, 83% -> 54% of
  tokens), and a trained REL head then rates every such video, reconstructions of real clips
  included, as mismatched (docs/evaluation.md, "REL of generated videos").

  The bundle must be an MMVID (bidirectional) transformer; its jitted scorers compile once.
  """

  def __init__(self, bundle, tokenizer, batch_size: int):
    self.bundle, self.tokenizer, self.batch_size = bundle, tokenizer, batch_size

    def rel_of_tokens(params, tokens, text, control_codes):
      cond = bundle.condition(params, text, control_codes)
      _, rel, _ = bundle.tokens_to_logits(params, tokens, cond)
      return rel

    @jax.jit
    def score_pixels(params, tokenizer, video, text, control_codes):
      codes = tokenizer.encode_to_codes(to_unit_range(video))
      return rel_of_tokens(params, codes.reshape(codes.shape[0], -1), text, control_codes)

    self._score_pixels = score_pixels
    self._score_tokens = jax.jit(rel_of_tokens)

  def __call__(self, videos: np.ndarray, text_ids: np.ndarray,
               controls: np.ndarray | None) -> np.ndarray:
    """REL logits (N,) of uint8 videos (N, T, H, W, 3), e.g. real clips."""
    return self._run({"video": videos}, text_ids, controls, lambda batch, text, codes:
                     self._score_pixels(self.bundle.params, self.tokenizer, batch["video"],
                                        text, codes))

  def score_tokens(self, tokens: np.ndarray, text_ids: np.ndarray,
                   controls: np.ndarray | None) -> np.ndarray:
    """REL logits (N,) of video tokens (N, video_len) as a transformer generated them."""
    tokens = np.asarray(tokens, np.int32).reshape(len(tokens), -1)
    return self._run({"tokens": tokens}, text_ids, controls, lambda batch, text, codes:
                     self._score_tokens(self.bundle.params, batch["tokens"], text, codes))

  def _run(self, arrays: dict, text_ids, controls, score) -> np.ndarray:
    arrays = dict(arrays, text=text_ids)
    if controls is not None and self.bundle.layout.num_controls:
      arrays["controls"] = controls
    out = []
    for valid, batch in padded_batches(arrays, self.batch_size):
      control_codes = (self.bundle.control_codes(self.tokenizer, batch["controls"])
                       if "controls" in batch else None)
      rel = score(batch, batch["text"], control_codes)
      out.append(np.asarray(rel, np.float32)[:valid])
    return np.concatenate(out)


def summarize_rel(logits: np.ndarray) -> dict:
  probability = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
  return {"mean_probability": float(probability.mean()), "mean_logit": float(logits.mean())}


def feature_metrics(real_features: np.ndarray, generated_features: np.ndarray,
                    prd_clusters: int, prd_angles: int, prd_runs: int, seed: int) -> dict:
  """FVD and PRD (conventional order + MMVID's order) between two I3D feature sets."""
  result = {"fvd": fvd_lib.frechet_distance(real_features, generated_features)}
  prd = prd_lib.prd_from_features(real_features, generated_features, num_clusters=prd_clusters,
                                  num_angles=prd_angles, num_runs=prd_runs, seed=seed)
  result["prd"] = {**prd.as_dict(), **prd.mmvid_order()}
  return result
