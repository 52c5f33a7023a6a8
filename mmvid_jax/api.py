"""The Python API for generation, for people who prefer a function to the command line.

    import mmvid_jax
    pipe = mmvid_jax.Pipeline.from_workdir("runs/shapes")
    videos = pipe(text=["A small red circle is moving north."], num_samples=4,
                  decoder="mask_predict", steps=20, cfg=1.5, seed=0)  # uint8 (4, T, H, W, 3)
    mmvid_jax.export_video(videos[0], "circle.mp4")   # or .gif

It runs the same code as `python -m mmvid_jax.sample` (`sampling.inputs` + `generate_videos`),
without writing files. Models load once in `from_workdir`; each new combination of batch size and
decoder settings compiles once, later calls reuse it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from mmvid_jax.errors import UserError  # noqa: E402


class Pipeline:
  """A trained workdir's transformer + video tokenizer + text tokenizer, ready to generate."""

  def __init__(self, run):
    self._run = run

  @classmethod
  def from_workdir(cls, workdir: str, dtype: str | None = None) -> "Pipeline":
    """Loads the exported models of a workdir trained by `python -m mmvid_jax.main`.

    `dtype` is the transformer's compute precision ("float32" or "bfloat16"; default: the
    workdir's `sample.dtype`).
    """
    from mmvid_jax.sampling import inputs
    return cls(inputs.load_run(os.fspath(workdir), dtype))

  @property
  def workdir(self) -> str:
    return self._run.workdir

  @property
  def config(self):
    """The workdir's resolved config (an ml_collections.ConfigDict)."""
    return self._run.config

  @property
  def control_slots(self) -> list[str]:
    """The source of each control-image slot, in order; empty for a text-only model."""
    return list(self._run.slots)

  @property
  def image_size(self) -> int:
    return int(self._run.tokenizer.image_size)

  @property
  def num_frames(self) -> int:
    return int(self._run.bundle.layout.num_frames)

  def __repr__(self) -> str:
    slots = ", ".join(self.control_slots) or "none"
    return (f"Pipeline(workdir={self.workdir!r}, {self.num_frames} frames of "
            f"{self.image_size}x{self.image_size}, control slots: {slots})")

  def __call__(self, text, images=None, *, num_samples: int | None = None,
               decoder: str | None = None, steps: int | None = None, cfg: float | None = None,
               candidates: int | None = None, seed: int = 0, dynamic_stop: bool = False,
               batch_size: int = 8, num_clips: int = 1, t_overlap: int | None = None,
               return_scores: bool = False):
    """Generates `num_samples` videos per caption.

    Args:
      text: captions (a list of strings; "" is the null caption).
      images: control images, one per control slot in slot order (`pipe.control_slots`); each a
        path, a PIL image or a uint8 (H, W, 3) array, None for a missing control. They apply to
        every caption; or give one such list per caption. Other sizes are resized. As in the
        command, a slot left None while another slot has an image gets a black image.
      num_samples, decoder, steps, cfg, candidates: default to the workdir's `sample` config.
      seed: the random seed; the same call with the same seed gives the same videos.
      dynamic_stop: mask-predict keeps its best-scoring video and stops after 5 flat steps.
      batch_size: at most this many videos per device call.
      num_clips, t_overlap: long videos, clips chained by keeping `t_overlap` frames (default T/2).
      return_scores: also return the (N,) REL/VID score of each video (NaN without reranking).

    Returns:
      uint8 videos (len(text) * num_samples, T, H, W, 3), caption-major (all samples of the
      first caption first); with `return_scores`, (videos, scores).
    """
    from mmvid_jax.sampling import generate
    from mmvid_jax.sampling import inputs
    run = self._run
    settings = inputs.resolve_settings(run.config, decoder=decoder, steps=steps,
                                       candidates=candidates, cfg=cfg, num_samples=num_samples)
    for name, value in (("batch_size", batch_size), ("num_clips", num_clips)):
      if int(value) < 1:
        raise UserError(f"{name} must be >= 1, got {value}. Fix: pass a positive number.")
    if isinstance(text, str):
      text = [text]
    sample = run.config.get("sample", {})
    options = generate.DecodeOptions(
        decoder=settings.decoder, steps=settings.steps, num_candidates=settings.candidates,
        cfg_scale=settings.cfg, dynamic_stop=bool(dynamic_stop),
        score_on=sample.get("score_on", "completed"))
    generate.check_compatible(run.bundle, run.tokenizer, options)
    text_ids = inputs.encode_captions(run.text_tokenizer, text, run.bundle.layout.text_len)
    controls = self._controls(images, len(text))

    import jax
    repeat = settings.num_samples
    rows = np.repeat(text_ids, repeat, axis=0)
    row_controls = None if controls is None else np.repeat(controls, repeat, axis=0)
    key = jax.random.key(int(seed))
    kwargs = dict(decoder=settings.decoder, steps=settings.steps,
                  num_candidates=settings.candidates, cfg_scale=settings.cfg,
                  dynamic_stop=bool(dynamic_stop), score_on=options.score_on)
    if int(num_clips) > 1:
      t_overlap = run.bundle.layout.num_frames // 2 if t_overlap is None else int(t_overlap)
      videos = generate.generate_long_videos(run.bundle, run.tokenizer, rows, row_controls, key,
                                             num_clips=int(num_clips), t_overlap=t_overlap,
                                             **kwargs)
      scores = np.full((len(rows),), np.nan)
    else:
      # No padding beyond the rows asked for: one video should not cost a batch of eight.
      videos, info = generate.generate_in_batches(run.bundle, run.tokenizer, rows, row_controls,
                                                  key, batch_size=min(int(batch_size), len(rows)),
                                                  **kwargs)
      scores = info["score"]
    return (videos, scores) if return_scores else videos

  def _controls(self, images, num_captions: int) -> np.ndarray | None:
    """uint8 (num_captions, n_slots, H, W, 3) or None (every control missing)."""
    from mmvid_jax.sampling import inputs
    slots, size = self._run.slots, self.image_size
    if images is None:
      images = []
    elif not isinstance(images, (list, tuple)):
      images = [images]  # a single image for a one-slot model
    per_caption = bool(images) and all(isinstance(i, (list, tuple)) for i in images)
    if per_caption and len(images) != num_captions:
      raise UserError(f"images has {len(images)} lists for {num_captions} caption(s). Fix: give "
                      "one list of images per caption, or one flat list shared by all.")
    groups = list(images) if per_caption else [images]
    for group in groups:
      inputs.check_image_count(len(group) if any(i is not None for i in group) else 0, slots)
    if not slots:
      return None
    arrays = [inputs.controls_array(group, slots, size) for group in groups]
    if all(a is None for a in arrays):
      return None  # generate_videos fills every slot with [MASK]
    blank = np.zeros((len(slots), size, size, 3), np.uint8)
    arrays = [blank if a is None else a for a in arrays]
    if not per_caption:
      arrays = arrays * num_captions
    return np.stack(arrays)


def export_video(video, path: str, fps: float = 8.0) -> str:
  """Writes one uint8 video (T, H, W, 3) as `.mp4` (H.264, plays in browsers; small frames are
  upscaled so they do not look like a blur) or `.gif`; returns the path."""
  from mmvid_jax.infra import video_io
  video = np.asarray(video)
  if video.ndim == 5 and video.shape[0] == 1:
    video = video[0]
  return video_io.write_video(os.fspath(path), video, fps=fps)
