"""Shared infrastructure: mesh and sharding, checkpoints, train-loop pieces, video I/O."""
