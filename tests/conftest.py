"""Test set-up: quiet TensorFlow, no hub access, 8 fake CPU devices for sharding tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# TensorFlow must never grab an accelerator.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
