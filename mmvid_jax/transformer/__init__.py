"""Stage 2: the MMVID bidirectional transformer, its sequence layout, masking and training."""
