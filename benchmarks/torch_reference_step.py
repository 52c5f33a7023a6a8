"""A same-machine PyTorch baseline for the MM-VoxCeleb text->video training step and sampling.

    pip install torch  # a CPU wheel; not a project dependency, only this script uses it
    python benchmarks/torch_reference_step.py --steps=3 --sample_steps=20

The project brief quotes MMVID's official PyTorch code at ~7.4 s per training step (batch 2,
MSM + REL + VID) and ~7.3 s per 20-step sample on "this CPU", but the machine's dense matmul
rate varies between hosts. This script times, in one process on the machine at hand, a PyTorch
step with the official code's structure at that size, so `transformer_speed.py --size=mmvox`
can be compared with it directly:

- width 768, 12 pre-LN blocks, 12 heads, MLP 3072 with QuickGELU, S = 1 + 50 + 2 + 512 = 565;
- three separate trunk passes per step (positive; text swapped between batch halves for REL;
  other video tokens for VID), each with the video head over the 1024 codes, as MMVID's code
  computes them; masked-token cross-entropy + both BCE losses; Adam;
- attention: `--attention=einsum` (softmax(QK^T)V written out, like MMVID's DALLE-pytorch
  attention) or `sdpa` (PyTorch's fused kernel, faster).

It is a reimplementation of the structure for timing, not MMVID's code; its FLOPs match the
`separate` variant of transformer_speed.py (1954 GFLOP per step at batch 2).
"""

import argparse
import math
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

WIDTH, DEPTH, HEADS, MLP = 768, 12, 12, 3072
TEXT_LEN, TEXT_VOCAB, CODES, FRAMES, GRID = 50, 49408, 1024, 8, 8
VIDEO_LEN = FRAMES * GRID * GRID
SEQ = 1 + TEXT_LEN + 2 + VIDEO_LEN


class Block(nn.Module):

  def __init__(self, attention: str):
    super().__init__()
    self.attention = attention
    self.ln1, self.ln2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
    self.qkv, self.proj = nn.Linear(WIDTH, 3 * WIDTH), nn.Linear(WIDTH, WIDTH)
    self.fc1, self.fc2 = nn.Linear(WIDTH, MLP), nn.Linear(MLP, WIDTH)

  def forward(self, x, mask):
    b, s, _ = x.shape
    q, k, v = self.qkv(self.ln1(x)).view(b, s, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)
    if self.attention == "sdpa":
      out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    else:
      scores = (q @ k.transpose(-1, -2)) / math.sqrt(WIDTH // HEADS)
      out = scores.masked_fill(~mask, -1e9).softmax(-1) @ v
    x = x + self.proj(out.transpose(1, 2).reshape(b, s, WIDTH))
    h = self.fc1(self.ln2(x))
    return x + self.fc2(h * torch.sigmoid(1.702 * h))


class Model(nn.Module):

  def __init__(self, attention: str):
    super().__init__()
    self.text = nn.Embedding(TEXT_VOCAB + TEXT_LEN, WIDTH)
    self.text_pos = nn.Parameter(torch.randn(TEXT_LEN, WIDTH) * 0.02)
    self.video = nn.Embedding(CODES + 1, WIDTH)
    self.axes = nn.ParameterList([nn.Parameter(torch.randn(n, WIDTH) * 0.02)
                                  for n in (FRAMES, GRID, GRID)])
    self.special = nn.Parameter(torch.randn(3, WIDTH) * 0.02)
    self.blocks = nn.ModuleList([Block(attention) for _ in range(DEPTH)])
    self.ln = nn.LayerNorm(WIDTH)
    self.head, self.rel, self.vid = nn.Linear(WIDTH, CODES), nn.Linear(WIDTH, 1), nn.Linear(WIDTH, 1)
    mask = torch.ones(SEQ, SEQ, dtype=torch.bool)
    for row in (1 + TEXT_LEN, 2 + TEXT_LEN):  # [ST1] and [VID] see no earlier position
      mask[row, :row] = False
    self.register_buffer("mask", mask)

  def forward(self, text, video):
    b = text.shape[0]
    t, y, x = self.axes
    positions = (t[:, None, None] + y[None, :, None] + x[None, None, :]).reshape(VIDEO_LEN, WIDTH)
    parts = [self.special[:1].expand(b, 1, WIDTH), self.text(text) + self.text_pos,
             self.special[1:].expand(b, 2, WIDTH), self.video(video) + positions]
    h = torch.cat(parts, dim=1)
    for block in self.blocks:
      h = block(h, self.mask)
    h = self.ln(h)
    return (self.head(h[:, -VIDEO_LEN:]), self.rel(h[:, 0])[:, 0],
            self.vid(h[:, 2 + TEXT_LEN])[:, 0])


def step_loss(model, text, codes, negative_codes, keep):
  masked = torch.where(keep, codes, CODES)
  masked_negative = torch.where(keep, negative_codes, CODES)
  logits, rel_pos, vid_pos = model(text, masked)
  _, rel_neg, _ = model(text.roll(text.shape[0] // 2, 0), masked)
  _, _, vid_neg = model(text, masked_negative)
  msm = F.cross_entropy(logits[~keep], codes[~keep])
  ones, zeros = torch.ones_like(rel_pos), torch.zeros_like(rel_pos)
  rel = (F.binary_cross_entropy_with_logits(rel_pos, ones)
         + F.binary_cross_entropy_with_logits(rel_neg, zeros))
  vid = (F.binary_cross_entropy_with_logits(vid_pos, ones)
         + F.binary_cross_entropy_with_logits(vid_neg, zeros))
  return 7 * msm + 0.5 * rel + 0.5 * vid


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--sample_steps", type=int, default=20)
  parser.add_argument("--attention", choices=("einsum", "sdpa"), default="einsum")
  parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's own)")
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  a, b = torch.randn(1130, 768), torch.randn(768, 3072)
  for _ in range(3):
    a @ b
  best = min(_timed(lambda: a @ b) for _ in range(5))
  print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, attention "
        f"{args.attention}; dense fp32 matmul 1130x768x3072: {2 * 1130 * 768 * 3072 / best / 1e9:.1f}"
        " GFLOP/s")

  model = Model(args.attention)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
  text = torch.randint(1, TEXT_VOCAB, (args.batch, TEXT_LEN))
  codes = torch.randint(0, CODES, (args.batch, VIDEO_LEN))
  negative = codes.roll(GRID * GRID, 1)
  keep = torch.rand(args.batch, VIDEO_LEN) < 0.2

  def train_step():
    optimizer.zero_grad(set_to_none=True)
    loss = step_loss(model, text, codes, negative, keep)
    loss.backward()
    optimizer.step()

  train_step()  # warm-up
  times = [_timed(train_step) for _ in range(args.steps)]
  step = float(np.median(times))
  print(f"train step (batch {args.batch}, 3 passes): {step:.2f} s, "
        f"{args.batch * SEQ / step:.0f} tokens/s")

  if args.sample_steps:
    with torch.no_grad():
      tokens = torch.full((1, VIDEO_LEN), CODES)
      model(text[:1], tokens)
      seconds = _timed(lambda: [model(text[:1], tokens) for _ in range(args.sample_steps)])
    print(f"sampling: {args.sample_steps} forward passes (one video, batch 1): {seconds:.2f} s")


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


if __name__ == "__main__":
  main()
