"""mmvid-jax: MMVID multimodal masked video generation in JAX/Flax.

    import mmvid_jax
    pipe = mmvid_jax.Pipeline.from_workdir("runs/shapes")
    videos = pipe(text=["A small red circle is moving north."], num_samples=4)
    mmvid_jax.export_video(videos[0], "circle.gif")
"""

__version__ = "0.1.0"

# Loaded on first use, so `import mmvid_jax` (and every command's start-up) stays fast.
_LAZY = {"Pipeline": "mmvid_jax.api", "export_video": "mmvid_jax.api"}
__all__ = ["Pipeline", "export_video", "__version__"]


def __getattr__(name):
  if name in _LAZY:
    import importlib
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'mmvid_jax' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_LAZY))
