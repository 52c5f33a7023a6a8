"""Stage 3: decoding loops (improved mask-predict, MaskGIT, autoregressive) and long video."""
