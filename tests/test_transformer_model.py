"""Model: shapes, heads, multi-pass batching, last-layer pruning, scan, ART-V KV cache, losses."""

import dataclasses

from flax import linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmvid_jax.transformer import losses
from mmvid_jax.transformer.model import ARTVTransformer, MMVIDTransformer, count_params
from mmvid_jax.transformer.vocab import Layout

LAYOUT = Layout(codebook_size=16, text_vocab_size=10, text_len=5, num_frames=2, latent_height=2,
                latent_width=2, num_controls=2, insert_sep=True)
DIMS = dict(width=32, depth=2, num_heads=2, mlp_dim=64)


def inputs(batch=2, seed=0):
  rng = np.random.default_rng(seed)
  text = rng.integers(1, 10, (batch, 5))
  text[:, 3:] = 0
  controls = rng.integers(0, 17, (batch, 2, 2, 2))
  video = rng.integers(0, 17, (batch, LAYOUT.video_len))
  return jnp.asarray(text), jnp.asarray(controls), jnp.asarray(video)


def init(model):
  text, controls, video = inputs()
  variables = model.init(jax.random.key(0), text, controls, video,
                         method=MMVIDTransformer.tokens_to_logits)
  return nn.unbox(variables["params"])


@pytest.mark.parametrize("scan,rotary", [(False, "none"), (True, "none"), (False, "video_3d"),
                                         (True, "video_3d")])
def test_forward_shapes_passes_and_pruning(scan, rotary):
  model = MMVIDTransformer(LAYOUT, scan_layers=scan, remat=scan, rotary=rotary, **DIMS)
  params = init(model)
  text, controls, video = inputs()
  logits, rel, vid = model.apply({"params": params}, text, controls, video,
                                 method=MMVIDTransformer.tokens_to_logits)
  assert logits.shape == (2, LAYOUT.video_len, 16) and rel.shape == vid.shape == (2,)
  assert np.isfinite(np.asarray(logits)).all()
  cond = model.apply({"params": params}, text, controls, method=MMVIDTransformer.embed_condition)
  assert cond.shape == (2, LAYOUT.condition_len, 32)
  # Three passes per sample in one call equal three separate calls; head only on pass 0.
  video2 = jnp.flip(video, axis=1)
  many = model.apply({"params": params}, jnp.stack([cond, cond[::-1], cond], 1),
                     jnp.stack([video, video, video2], 1), vocab_passes=1)
  assert many[0].shape == (2, 1, LAYOUT.video_len, 16)
  for p, (c, v) in enumerate([(cond, video), (cond[::-1], video), (cond, video2)]):
    single = model.apply({"params": params}, c, v)
    np.testing.assert_allclose(many[1][:, p], single[1], atol=1e-5)
    np.testing.assert_allclose(many[2][:, p], single[2], atol=1e-5)
  np.testing.assert_allclose(many[0][:, 0], logits, atol=1e-5)
  # Pruning the last layer of the head-less passes (unscanned) changes no result.
  pruned_many = model.apply({"params": params}, jnp.stack([cond, cond[::-1], cond], 1),
                            jnp.stack([video, video, video2], 1), vocab_passes=1,
                            prune_last_layer=True)
  for a, b in zip(pruned_many, many):
    np.testing.assert_allclose(a, b, atol=1e-5)
  # Pruning the last layer to [REL]/[VID] rows gives the same scores.
  pruned = model.apply({"params": params}, cond, video, vocab_passes=0, prune_last_layer=True)
  assert pruned[0] is None
  np.testing.assert_allclose(pruned[1], rel, atol=1e-5)
  np.testing.assert_allclose(pruned[2], vid, atol=1e-5)


def test_scan_and_loop_have_the_same_parameter_count():
  loop = count_params(init(MMVIDTransformer(LAYOUT, **DIMS)))
  scanned = count_params(init(MMVIDTransformer(LAYOUT, scan_layers=True, **DIMS)))
  assert loop == scanned


def test_logical_axis_names_on_params():
  model = MMVIDTransformer(LAYOUT, scan_layers=True, **DIMS)
  text, controls, video = inputs()
  boxed = jax.eval_shape(lambda: model.init(jax.random.key(0), text, controls, video,
                                            method=MMVIDTransformer.tokens_to_logits))
  specs = jax.tree_util.tree_leaves(nn.get_partition_spec(boxed),
                                    is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
  names = {axis for spec in specs for axis in spec if axis}
  assert {"embed", "heads", "kv", "mlp", "vocab", "layers"} <= names


def test_padding_is_position_specific():
  model = MMVIDTransformer(LAYOUT, **DIMS)
  params = init(model)
  text = jnp.zeros((1, 5), jnp.int32)
  cond = model.apply({"params": params}, text, inputs(1)[1],
                     method=MMVIDTransformer.embed_condition)
  pads = np.asarray(cond[0, LAYOUT.text_slice])
  emb = np.asarray(params["text"]["text_emb"])
  pos = np.asarray(params["text"]["text_pos"])
  np.testing.assert_allclose(pads, emb[10:15] + pos, atol=1e-6)


@pytest.mark.parametrize("scan,rotary", [(False, "none"), (True, "none"), (True, "video_3d")])
def test_artv_kv_cache_decode_equals_uncached_forward(scan, rotary):
  model = ARTVTransformer(LAYOUT, scan_layers=scan, rotary=rotary, **DIMS)
  text, controls, _ = inputs()
  codes = jax.random.randint(jax.random.key(1), (2, LAYOUT.video_len), 0, 16)
  variables = model.init(jax.random.key(0), text, controls, codes)
  full = model.apply(variables, text, controls, codes)
  assert full["text"].shape == (2, 5, LAYOUT.text_table_size)
  assert full["control"].shape == (2, LAYOUT.control_len, LAYOUT.video_vocab_size)
  logits, cache = model.apply(variables, text, controls, method=ARTVTransformer.prefill)
  steps = [logits]
  step = jax.jit(lambda c, t, i: model.apply(variables, c, t, i,
                                             method=ARTVTransformer.decode_step))
  for i in range(LAYOUT.video_len - 1):
    logits, cache = step(cache, codes[:, i], jnp.asarray(i))
    steps.append(logits)
  np.testing.assert_allclose(jnp.stack(steps, 1), full["video"], atol=1e-4)


def test_msm_loss_only_on_masked_tokens():
  logits = jax.random.normal(jax.random.key(0), (2, 6, 5))
  targets = jnp.array([[0, 1, 2, 3, 4, 0], [1, 1, 1, 1, 1, 1]])
  keep = jnp.array([[1, 0, 1, 0, 0, 1], [1, 1, 1, 1, 1, 0]], bool)
  loss, acc, count = losses.msm_loss(logits, targets, keep)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  expected = (ce[0, 1] + ce[0, 3] + ce[0, 4] + ce[1, 5]) / 4  # token mean over the batch
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert int(count) == 4 and 0 <= float(acc) <= 1
  # Changing visible logits changes nothing.
  moved = logits.at[0, 0].add(100.0)
  np.testing.assert_allclose(losses.msm_loss(moved, targets, keep)[0], loss, rtol=1e-6)


def test_pair_bce_excludes_fully_masked_samples():
  pos, neg = jnp.array([2.0, -1.0, 5.0]), jnp.array([-3.0, 0.5, 9.0])
  weights = jnp.array([True, True, False])
  loss, acc = losses.pair_bce_loss(pos, neg, weights)
  bce = lambda x, y: optax.sigmoid_binary_cross_entropy(jnp.float32(x), jnp.float32(y))
  expected = (bce(2.0, 1.0) + bce(-3.0, 0.0) + bce(-1.0, 1.0) + bce(0.5, 0.0)) / 2
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(acc, 0.5)  # sample 0 both right, sample 1 both wrong
  # The excluded sample's scores do not matter (MMVID's VID bug would count them).
  np.testing.assert_allclose(losses.pair_bce_loss(pos, neg.at[2].set(-50.0), weights)[0], loss)
  # All excluded: zero, not NaN.
  assert float(losses.pair_bce_loss(pos, neg, jnp.zeros(3, bool))[0]) == 0.0


def test_pair_accuracy_ceiling_counts_identical_pairs():
  positive = jnp.array([[1, 2, 3], [1, 2, 3], [4, 5, 6], [7, 8, 9]])
  negative = jnp.array([[1, 2, 3], [1, 2, 0], [4, 5, 6], [0, 0, 0]])  # rows 0, 2 identical
  counted = jnp.array([True, True, True, False])
  # 2 identical pairs of 3 counted: at best 1 - (2/3)/2 of the answers are right.
  np.testing.assert_allclose(losses.pair_accuracy_ceiling(positive, negative, counted), 2 / 3)
  np.testing.assert_allclose(losses.pair_accuracy_ceiling(positive, positive + 1, counted), 1.0)
  np.testing.assert_allclose(losses.pair_accuracy_ceiling(positive, positive, counted), 0.5)
  assert float(losses.pair_accuracy_ceiling(positive, positive, jnp.zeros(4, bool))) == 1.0


def test_log_warmup_schedule_matches_deepspeed():
  schedule = losses.log_warmup_schedule(1e-4, 5000, 1e-6)
  np.testing.assert_allclose(schedule(0), 1e-6, rtol=1e-6)
  np.testing.assert_allclose(schedule(1), 1e-6, rtol=1e-6)
  np.testing.assert_allclose(schedule(100), 1e-6 + (1e-4 - 1e-6) * np.log(100) / np.log(5000),
                             rtol=1e-5)
  np.testing.assert_allclose(schedule(5000), 1e-4, rtol=1e-6)
  np.testing.assert_allclose(schedule(90000), 1e-4, rtol=1e-6)
  cosine = losses.make_schedule("cosine", 1e-3, 10, 100, 1e-6)
  assert float(cosine(10)) == pytest.approx(1e-3) and float(cosine(100)) == pytest.approx(1e-6)


def test_sincos_position_init_makes_neighbours_similar_and_stays_learned():
  from mmvid_jax.transformer import embeddings
  layout = Layout(16, 30, 4, 4, 6, 6)
  module = embeddings.VideoPositions(layout, 48, 0.02, "sincos")
  params = module.init(jax.random.key(0))
  table = np.asarray(module.apply(params)).reshape(4, 6, 6, 48)
  # Each axis lives in its own third of the channels.
  assert np.abs(np.asarray(nn.unbox(params["params"]["t"]))[..., 16:]).max() == 0.0
  assert np.abs(np.asarray(nn.unbox(params["params"]["x"]))[..., :32]).max() == 0.0
  np.testing.assert_allclose(table.std(), 0.02, rtol=0.5)
  def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
  centre = table[1, 2, 2]
  assert cosine(centre, table[1, 2, 3]) > cosine(centre, table[1, 2, 5])
  assert cosine(centre, table[1, 3, 2]) > cosine(centre, table[1, 5, 2])
  assert cosine(centre, table[2, 2, 2]) > cosine(centre, table[3, 2, 2])
  assert len(jax.tree_util.tree_leaves(params)) == 3  # the tables remain parameters
  with pytest.raises(ValueError, match="position_init"):
    embeddings.VideoPositions(layout, 48, 0.02, "rope").init(jax.random.key(0))


def test_text_summary_is_a_separate_path_off_by_default():
  plain = MMVIDTransformer(LAYOUT, **DIMS)
  summary = MMVIDTransformer(LAYOUT, text_summary=True, **DIMS)
  assert "text_summary" not in init(plain)
  params = init(summary)
  assert params["text_summary"]["kernel"].shape == (32, 32)
  text, controls, video = inputs()
  run = lambda model, p, t: model.apply({"params": p}, t, controls, video,
                                        method=MMVIDTransformer.tokens_to_logits)
  # A zero projection is exactly the MMVID model with the same other parameters.
  zeroed = dict(params, text_summary=jax.tree.map(jnp.zeros_like, params["text_summary"]))
  without = {k: v for k, v in params.items() if k != "text_summary"}
  for a, b in zip(run(summary, zeroed, text), run(plain, without, text)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  # A non-zero projection changes the video predictions, and more when the caption changes.
  with_summary = run(summary, params, text)
  assert float(jnp.abs(with_summary[0] - run(plain, without, text)[0]).max()) > 1e-4
  other_text = text.at[:, 0].set(text[:, 0] % 9 + 1)
  shift = lambda p: float(jnp.abs(run(summary, p, other_text)[0] - run(summary, p, text)[0]).mean())
  big = dict(params, text_summary={"kernel": params["text_summary"]["kernel"] * 50,
                                   "bias": params["text_summary"]["bias"]})
  assert shift(big) > shift(zeroed) > 0
  # Exported with the model (the spec rebuilds it).
  from mmvid_jax.transformer import api
  _, rebuilt = api.build_model({"layout": dataclasses.asdict(LAYOUT), "objective": "mmvid",
                                "model": api.module_spec(summary)})
  assert rebuilt.text_summary and not api.build_model(
      {"layout": dataclasses.asdict(LAYOUT), "objective": "mmvid",
       "model": api.module_spec(plain)})[1].text_summary


@pytest.mark.parametrize("model_cls", [MMVIDTransformer, ARTVTransformer])
def test_dense_init_scales_every_kernel_by_fan_in_or_002(model_cls):
  from mmvid_jax.transformer import model as model_lib
  from mmvid_jax.errors import ConfigError
  width = 128
  dims = dict(DIMS, width=width, mlp_dim=4 * width)
  stds = {}
  for scheme in ("lecun", "normal"):
    module = model_cls(LAYOUT, dense_init=scheme, **dims)
    if model_cls is MMVIDTransformer:
      params = init(module)
    else:
      text, controls, video = inputs()
      params = nn.unbox(module.init(jax.random.key(0), text, controls, video)["params"])
    block = params["trunk"]["block_0"]
    stds[scheme] = {"query": float(np.std(block["attention"]["query"]["kernel"])),
                    "fc2": float(np.std(block["mlp"]["fc2"]["kernel"])),
                    "head": float(np.std(params["video_head"]["dense"]["kernel"]))}
  # lecun: 1/sqrt(fan_in) (fc2's fan-in is the MLP width); normal: 0.02 everywhere.
  np.testing.assert_allclose(stds["lecun"]["query"], width ** -0.5, rtol=0.1)
  np.testing.assert_allclose(stds["lecun"]["fc2"], (4 * width) ** -0.5, rtol=0.1)
  np.testing.assert_allclose(stds["lecun"]["head"], width ** -0.5, rtol=0.2)
  for value in stds["normal"].values():
    np.testing.assert_allclose(value, 0.02, rtol=0.2)
  config = {"width": width, "depth": 2, "num_heads": 2, "mlp_dim": 64, "activation": "gelu",
            "dropout": 0.0, "scan_layers": False, "remat": False, "dense_init": "xavier"}
  import ml_collections
  with pytest.raises(ConfigError, match="transformer.dense_init"):
    model_lib.model_kwargs(ml_collections.ConfigDict(config))
