"""Stage 1: the per-frame video tokenizer (VQGAN with VQ or FSQ quantizers)."""
