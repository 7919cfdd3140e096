"""Text embeddings computed as the old CAT-Seg / PartCATSeg predictors compute them (OpenAI's CLIP in fp16)."""

from __future__ import annotations

import pytest
import torch

from ovparts import load_model
from ovparts.backbones.openai_fp16_text import encode_cached, encode_openai_fp16, openai_token_ids
from ovparts.convert.catseg import convert_catseg_state_dict
from ovparts.convert.partcatseg import convert_partcatseg_state_dict
from ovparts.errors import ConfigError
from ovparts.models.catseg import CatSegConfig

from ..convert.official_catseg import official_catseg
from ..convert.official_partcatseg import official_partcatseg

TEMPLATES = ("a photo of a {}.", "{}")


@pytest.fixture(scope="module")
def backbone():
    return load_model("catseg", config="tiny").backbone


def test_token_ids_are_padded_with_zeros_to_the_context(backbone):
    ids = openai_token_ids(backbone.tokenizer, ["cat", "a photo of a dog"], 77)
    assert ids.shape == (2, 77)
    eos = backbone.tokenizer.eos_token_id
    for row in ids:
        end = int((row == eos).nonzero()[0])
        assert row[0] == backbone.tokenizer.bos_token_id
        assert torch.all(row[end + 1 :] == 0)
        assert int(row.argmax()) == end  # OpenAI pools at the argmax: the end token has the highest id


def test_embeddings_are_fp16_rounded_unit_vectors_near_the_fp32_path(backbone):
    texts = ["cat's head", "dog's tail"]
    fp16 = encode_openai_fp16(backbone.clip, backbone.tokenizer, texts, TEMPLATES)
    fp32 = backbone.encode_text(texts, templates=TEMPLATES, normalize=True)
    assert fp16.dtype == torch.float32 and fp16.shape == fp32.shape == (2, 2, fp32.shape[-1])
    assert torch.equal(fp16, fp16.half().float())  # computed in half precision
    assert torch.allclose(fp16.norm(dim=-1), torch.ones(2, 2), atol=2e-3)
    assert torch.allclose(fp16, fp32, atol=5e-3)
    assert not torch.equal(fp16, fp32)


def test_cache_follows_the_vocabulary_and_the_weights(backbone):
    first = encode_cached(backbone, ["cat"], TEMPLATES)
    assert encode_cached(backbone, ["cat"], TEMPLATES) is first
    assert encode_cached(backbone, ["dog"], TEMPLATES) is not first
    with torch.no_grad():
        backbone.clip.text_projection.weight.mul_(2.0)
    try:
        again = encode_cached(backbone, ["cat"], TEMPLATES)
        assert again is not first
    finally:
        with torch.no_grad():
            backbone.clip.text_projection.weight.div_(2.0)


def test_models_use_it_when_configured():
    model = load_model("catseg", config="tiny")
    plain = model.text_embeddings(["cat"])
    model.config.text_precision = "openai_fp16"
    official = model.text_embeddings(["cat"])
    assert torch.equal(
        official,
        encode_openai_fp16(
            model.backbone.clip, model.backbone.tokenizer, ["cat"], model.config.template_list
        ),
    )
    assert not torch.equal(plain, official)


def test_unknown_precision_is_refused_in_one_sentence():
    with pytest.raises(ConfigError, match="Unknown text precision"):
        CatSegConfig(text_precision="bf16")


def test_converters_choose_the_official_text_precision():
    assert convert_catseg_state_dict(official_catseg("cvpr")).config["text_precision"] == "fp32"
    assert convert_catseg_state_dict(official_catseg("old")).config["text_precision"] == "openai_fp16"
    assert convert_partcatseg_state_dict(official_partcatseg()).config["text_precision"] == "openai_fp16"
