"""The CAT-Seg model end to end with tiny random weights: its outputs, training, Segmenter (the generic
contract, chunking and checkpoint round trip are checked for every method in tests/models/test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ovparts
from ovparts.errors import ConfigError
from ovparts.methods.catseg.model import CONFIGS, CatSeg, CatSegConfig

VOCAB = "dog: head, leg, tail; cat: ear, paw"


@pytest.fixture(scope="module", params=["tiny", "tiny-old"])
def model(request) -> CatSeg:
    torch.manual_seed(0)
    return ovparts.load_model("catseg", config=request.param)


def pixels(model: CatSeg, b: int = 1, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    side = model.config.image_size
    return torch.randn(b, 3, side, side)


def test_registered_with_its_configs():
    assert "catseg" in ovparts.available_models()
    assert {"default", "tiny", "tiny-old", "vit-b", "vit-l", "vit-b-old"} <= set(CONFIGS)


def test_predict_contract(model):
    vocab = ovparts.Vocabulary.parse(VOCAB)
    with torch.no_grad():
        out = model.predict(pixels(model, b=2), vocab)
    grid = model.config.image_size // model.config.vision_config["patch_size"]
    assert out.parts.shape == (2, len(vocab), 4 * grid, 4 * grid)
    assert out.background is None and out.activation == "sigmoid"


def test_variants_use_their_templates_and_guidance(model):
    texts = model.text_embeddings(["dog's head", "cat's ear"])
    assert texts.shape[:2] == (2, len(model.config.template_list))
    assert torch.allclose(texts.norm(dim=-1), torch.ones(texts.shape[:2]), atol=1e-5)
    if model.config.variant == "old":
        assert model.resnet is not None and model.clip_guidance is None
    else:
        assert model.clip_guidance is not None and model.resnet is None


def test_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = ovparts.load_model("catseg", config="tiny").train()
    texts = ["dog's head", "dog's leg", "cat's ear"]
    x = pixels(model, b=2, seed=1)
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[:, :, 16:] = 1
    labels[:, 24:, :] = 2
    labels[0, :4, :4] = 255
    groups = model.parameter_groups(lr=1e-3, clip_multiplier=0.1)
    optimizer = torch.optim.AdamW(groups)
    losses = []
    for _ in range(4):
        loss = model.loss(x, labels, texts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    # CVPR scope: CLIP's Q/V weights of both encoders learn, the rest of CLIP stays frozen
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")}
    assert trainable and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in trainable)
    assert any(n.startswith("backbone.clip.text_model.") for n in trainable)


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError):
        CatSegConfig.from_dict({**CONFIGS["tiny"], "variant": "v3"})
    with pytest.raises(ConfigError):
        CatSegConfig.from_dict({**CONFIGS["tiny"], "templates": "nope"})
    with pytest.raises(ConfigError):
        CatSegConfig.from_dict({**CONFIGS["tiny"], "finetune": "lora"})


def test_segmenter_pred_all_and_oracle_obj(chelsea):
    model = ovparts.load_model("catseg", config="tiny")
    vocab = ovparts.Vocabulary.parse(VOCAB)
    seg = ovparts.Segmenter(model)
    image = chelsea[:60, :90]  # non-square
    pred_all = seg(image, vocab)
    assert pred_all.part_map.shape == (60, 90) and pred_all.protocol == "pred_all"
    objects = np.full((60, 90), -1)
    objects[:, 45:] = vocab.objects.index("cat")
    oracle = seg(image, vocab, object_mask=objects)
    cat_parts = set(vocab.parts_of("cat"))
    inside = oracle.part_map[:, 45:]
    assert set(np.unique(inside).tolist()) <= cat_parts
    assert (oracle.part_map[:, :45] == -1).all()
