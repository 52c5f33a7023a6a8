"""Datasets (procedural Shapes, TFDS builders), the tf.data input pipeline, text tokenizers."""
