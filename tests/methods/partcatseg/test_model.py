"""PartCATSeg: shapes, both stages, the faithful switches, losses and training, protocols, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import ovparts
from ovparts.backbones.dino import build_dino
from ovparts.imageio import load_image
from ovparts.methods.catseg.config import TINY_CLIP
from ovparts.methods.partcatseg.model import (
    ABSENT_OBJECT_LOGIT,
    PartCatSeg,
    PartCatSegAggregator,
    PartCatSegConfig,
)
from ovparts.testing import write_dino_checkpoint

VOCAB = "dog: head, torso, tail; cat: head, ear; car"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The shared CPU is oversubscribed: one intra-op thread runs these tiny models ~100x faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vocab():
    return ovparts.Vocabulary.parse(VOCAB)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ovparts.load_model("partcatseg", config="tiny")


@pytest.fixture(scope="module")
def faithful():
    torch.manual_seed(0)
    return ovparts.load_model("partcatseg", config="tiny-official")


@pytest.fixture(scope="module")
def pixels():
    torch.manual_seed(1)
    return torch.randn(2, 3, 32, 32)


def test_outputs_of_both_stages_have_the_documented_shapes(model, vocab, pixels):
    with torch.no_grad():
        out = model(pixels, vocab)
    # 4 generalized parts (head, torso, tail, ear) + 2 part objects + background; 5 parts + background
    assert out["part_object_logits"].shape == (2, 7, 16, 16)
    assert out["specific_logits"].shape == (2, 6, 16, 16)
    assert out["part_object_cost"].shape == (2, 3, 7, 4, 4) and out["specific_cost"].shape == (2, 3, 6, 4, 4)


def test_predict_fills_parts_background_and_objects_in_vocabulary_order(model, vocab, pixels):
    with torch.no_grad():
        logits = model.predict(pixels, vocab)
        out = model(pixels, vocab)
    assert logits.parts.shape == (2, 5, 16, 16) and logits.background.shape == (2, 1, 16, 16)
    assert logits.objects is None  # official Pred-All: no object gating
    objects = logits.extras["objects"]
    assert objects.shape == (2, 3, 16, 16)
    torch.testing.assert_close(objects[:, :2], out["part_object_logits"][:, 4:6])
    assert torch.all(objects[:, 2] == ABSENT_OBJECT_LOGIT)  # "car" has no parts
    gated = PartCatSeg(model.config.replace(pred_all="objects"))
    assert gated.predict(pixels, vocab).objects.shape == (2, 3, 16, 16)


def test_stage_b_feature_of_a_part_is_its_part_and_object_embeddings():
    cfg = PartCatSegConfig.from_dict(ovparts.methods.partcatseg.model.CONFIGS["tiny"]).head_config
    head = PartCatSegAggregator(cfg)
    x = torch.randn(1, cfg.hidden_dim, 7, 4, 4)  # 4 parts, 2 objects, background
    to_part, to_object = torch.tensor([0, 1, 2, 0, 3]), torch.tensor([0, 0, 0, 1, 1])
    feats = head.specific_features(x, to_part, to_object, num_parts=4, chunk=2)
    assert feats.shape == (1, cfg.text_dim, 6, 4, 4)
    by_hand = head.proj_feat(torch.cat([x[:, :, 0], x[:, :, 4 + 1]], dim=1))  # cat's head = head + cat
    torch.testing.assert_close(feats[:, :, 3], by_hand)
    torch.testing.assert_close(feats[:, :, 5], head.proj_feat(torch.cat([x[:, :, 6], x[:, :, 6]], dim=1)))


def test_stage_b_cost_matches_each_class_with_its_own_text_only():
    feats = torch.randn(1, 8, 3, 2, 2)
    text = torch.randn(1, 3, 2, 8)
    cost = PartCatSegAggregator.classwise_cost(feats, text)
    assert cost.shape == (1, 2, 3, 2, 2)
    expected = F.cosine_similarity(feats[0, :, 1, 0, 1], text[0, 1, 0], dim=0)
    torch.testing.assert_close(cost[0, 0, 1, 0, 1], expected)


def _object_logits(model, part_text, obj_text, pixels):
    dense, guidance = model.image_features(pixels)
    index_part, index_obj = torch.tensor([0, 1]), torch.tensor([0, 0])
    specific = torch.randn(
        3, part_text.shape[1], part_text.shape[2], generator=torch.Generator().manual_seed(2)
    )
    out = model.head(dense, torch.cat([part_text, obj_text]), specific, guidance, index_part, index_obj)
    return out["part_object_logits"][:, 2:]


def test_shared_stage_a_mixes_parts_into_objects_separate_does_not(model, faithful, pixels):
    gen = torch.Generator().manual_seed(5)
    dim, prompts = model.config.projection_dim, len(model.config.template_list)
    obj_text = torch.randn(2, prompts, dim, generator=gen)  # one object + background
    parts_a, parts_b = torch.randn(2, 2, prompts, dim, generator=gen)
    with torch.no_grad():
        sep = [_object_logits(model, p, obj_text, pixels[:1]) for p in (parts_a, parts_b)]
        shared = [_object_logits(faithful, p, obj_text, pixels[:1]) for p in (parts_a, parts_b)]
    torch.testing.assert_close(sep[0], sep[1])
    assert not torch.allclose(shared[0], shared[1])


def test_faithful_switches_and_their_defaults(model, faithful):
    cfg, off = model.config, faithful.config
    assert [cfg.switch(n) for n in ("object_layers", "class_attention", "background", "dense_residual")] == [
        "separate",
        "linear",
        "learned",
        "cls",
    ]
    assert [off.switch(n) for n in ("object_layers", "class_attention", "background", "dense_residual")] == [
        "shared",
        "query",
        "fixed",
        "token",
    ]
    assert faithful.dino.hub_interpolation and not model.dino.hub_interpolation
    assert (
        faithful.head.layers[0].classes.attn.kind == "query"
        and model.head.layers[0].classes.attn.kind == "linear"
    )
    assert faithful.head.layers_object is None and model.head.layers_object is not None
    # the untrained background embedding is a buffer (never trained), the corrected one a parameter
    assert "background_embedding" in dict(faithful.named_buffers())
    assert "background_embedding" in dict(model.named_parameters())
    # official: stage B starts as a copy of stage A's (random) init; default: independent until init_from_catseg
    for a, b in zip(
        faithful.head.layers.parameters(), faithful.head.layers_specific.parameters(), strict=True
    ):
        assert torch.equal(a, b)
    assert not torch.equal(
        model.head.layers[0].spatial.block1.attn.q.weight,
        model.head.layers_specific[0].spatial.block1.attn.q.weight,
    )
    # a per-switch override wins over faithful
    assert (
        PartCatSegConfig.from_dict({**off.to_dict(), "class_attention": "linear"}).switch("class_attention")
        == "linear"
    )


def _catseg_like(config: PartCatSegConfig):
    overrides = {
        "base": "tiny-old",
        "vision_config": dict(TINY_CLIP["vision_config"]),
        "templates": config.templates,
    }
    torch.manual_seed(7)
    return ovparts.load_model("catseg", config=overrides)


@pytest.mark.parametrize("name", ["tiny", "tiny-official"])
def test_init_from_catseg_copies_the_loaded_stage_a_only_by_default(name):
    torch.manual_seed(0)
    model = ovparts.load_model("partcatseg", config=name)
    catseg = _catseg_like(model.config)
    loaded = model.init_from_catseg(catseg)
    assert "layers.0.classes.attn.q.weight" in loaded and "guidance_proj.weight" not in loaded
    source = catseg.head.layers[0].classes.attn.q.weight
    assert torch.equal(model.head.layers[0].classes.attn.q.weight, source)
    assert torch.equal(
        model.backbone.clip.text_projection.weight, catseg.backbone.clip.text_projection.weight
    )
    copied = torch.equal(model.head.layers_specific[0].classes.attn.q.weight, source)
    assert copied == (name == "tiny")


def test_loss_terms_gradients_and_frozen_clip(vocab, pixels):
    torch.manual_seed(0)
    model = ovparts.load_model("partcatseg", config="tiny").train()
    parts = torch.randint(0, len(vocab), (2, 32, 32))
    parts[:, :8] = 255
    objects = torch.as_tensor(vocab.part_to_object)[parts.clamp(max=len(vocab) - 1)]
    objects[parts == 255] = 255
    terms = model.loss(pixels, vocab, parts, objects, ignore_index=255)
    assert set(terms) == {"specific", "part", "object", "compositional", "total"}
    assert all(torch.isfinite(v) and v.item() >= 0 for v in terms.values())
    torch.testing.assert_close(terms["total"], sum(v for k, v in terms.items() if k != "total"))
    terms["total"].backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.head.proj_feat.weight.grad.abs().sum() > 0
    assert model.dino.encoder.embeddings.patch_embeddings.projection.weight.grad is not None
    assert model.background_embedding.grad is not None
    groups = model.parameter_groups(lr=2e-4)
    lrs = {g["lr"] for g in groups}
    assert sorted(lrs) == pytest.approx([2e-6, 2e-4])
    dino_ids = {id(p) for p in model.dino.parameters()}
    assert all(g["lr"] == pytest.approx(2e-6) for g in groups if id(g["params"][0]) in dino_ids)
    assert model.lr_multipliers == {"dino.": 0.01}


def test_a_few_training_steps_on_synthetic_data_lower_the_loss(tmp_path):
    from ovparts.data import load_dataset, write_synthetic

    root = write_synthetic("pascal_part_116", tmp_path, images_per_split=2, size=(32, 32), splits=("train",))
    samples = list(load_dataset("pascal", root.parent, split="train"))
    full = ovparts.Vocabulary.from_benchmark("pascal_part_116")
    present = sorted({int(i) for s in samples for i in np.unique(s.part_map) if i >= 0})
    vocab = ovparts.Vocabulary.from_names([full.parts[i].name for i in present])
    remap = np.full(len(full) + 1, 255)
    remap[present] = np.arange(len(present))
    object_remap = np.full(len(full.objects) + 1, 255)
    for j, name in enumerate(vocab.objects):
        object_remap[full.objects.index(name)] = j
    seg = ovparts.Segmenter(ovparts.load_model("partcatseg", config="tiny"))
    pixels = torch.cat([seg.pixel_values(load_image(s.image_path)) for s in samples])
    parts = torch.as_tensor(np.stack([remap[s.part_map] for s in samples]))
    objects = torch.as_tensor(np.stack([object_remap[s.object_map] for s in samples]))

    torch.manual_seed(0)
    model = ovparts.load_model("partcatseg", config="tiny").train()
    optim = torch.optim.AdamW(model.parameter_groups(lr=3e-3, weight_decay=0.0))
    losses = []
    for _ in range(6):
        total = model.loss(pixels, vocab, parts, objects)["total"]
        optim.zero_grad()
        total.backward()
        optim.step()
        losses.append(total.item())
    assert losses[-1] < losses[0]


def test_segmenter_pred_all_and_oracle_obj(model, vocab, chelsea):
    seg = ovparts.Segmenter(model)
    assert seg.sliding_window is None
    pred = seg(chelsea, vocab)
    assert pred.part_map.shape == chelsea.shape[:2] and pred.protocol == "pred_all"
    assert set(np.unique(pred.part_map)) <= set(range(-1, len(vocab)))
    mask = np.full(chelsea.shape[:2], -1)
    mask[50:250, 100:400] = 1  # cat
    oracle = seg(chelsea, vocab, object_mask=mask)
    inside = oracle.part_map[mask == 1]
    assert set(np.unique(inside)) <= set(vocab.parts_of("cat")) and np.all(oracle.part_map[mask < 0] == -1)


def test_dino_weights_from_a_hub_folder(tmp_path, vocab, pixels):
    folder = write_dino_checkpoint(tmp_path / "dinov2", seed=4, architecture={
        "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "patch_size": 8, "image_size": 32,
    })  # fmt: skip
    model = ovparts.load_model("partcatseg", config={"base": "tiny", "dino_weights": str(folder)})
    reference = build_dino("dinov2", weights=str(folder))
    assert torch.equal(model.dino.encoder.layernorm.weight, reference.layernorm.weight)
    assert model.config.dino_config["num_hidden_layers"] == 1
    saved = model.save_pretrained(tmp_path / "model")
    for path in folder.iterdir():  # the checkpoint must not need the DINO folder any more
        path.unlink()
    again = ovparts.load_model("partcatseg", weights=str(saved))
    with torch.no_grad():
        torch.testing.assert_close(model.predict(pixels, vocab).parts, again.predict(pixels, vocab).parts)


def test_cli_segment_with_the_tiny_config(tmp_path, chelsea_path):
    from ovparts.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "segment",
            str(chelsea_path),
            "--model",
            "partcatseg",
            "--config",
            "tiny",
            "--vocab",
            VOCAB,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "partcatseg" in ovparts.available_models()


def test_query_attention_by_hand_and_permutation_equivariant():
    from ovparts.models.cost_aggregation import query_attention

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 2, 3, generator=gen) for _ in range(3))  # 4 classes, 2 heads
    out = query_attention(q, k, v)
    h = 1
    logits = q[0, :, h] @ k[0, :, h].T / 3**0.5  # (L, S)
    weights = logits.softmax(dim=0) + 1e-8  # over queries
    weights = weights / weights.sum(dim=1, keepdim=True)  # then over keys
    torch.testing.assert_close(out[0, :, h], weights @ v[0, :, h])
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(query_attention(q[:, perm], k[:, perm], v[:, perm]), out[:, perm])


def test_pred_all_gated_by_predicted_objects_when_asked(model, vocab, chelsea):
    gated = PartCatSeg(model.config.replace(pred_all="objects"))
    gated.load_state_dict(model.state_dict())
    result = ovparts.Segmenter(gated)(chelsea, vocab)
    labelled = result.part_map >= 0
    # every part pixel carries a part of the object predicted there
    parts_object = np.asarray(vocab.part_to_object)[result.part_map[labelled]]
    assert np.array_equal(parts_object, result.object_map[labelled])
    assert not np.any(result.object_map == vocab.objects.index("car"))  # no parts: never predicted
