"""mmvid-jax: MMVID multimodal masked video generation in JAX/Flax."""

__version__ = "0.1.0"
