"""CLIPSeg (the OV-PARTS VA+L+F+D baseline) against the official code (OpenRobotLab/OV_PARTS), case
``clipseg_ovparts``.

The fixture holds a seeded random checkpoint in the official format and what the official test-time path
computed with it on scikit-image's cat photo (tools/parity/clipseg_ovparts.py). Here the checkpoint goes
through ``ovparts convert clipseg`` (its Python API) and ``ovparts.Segmenter``: with the object mask
(Oracle-Obj, the protocol OV-PARTS evaluates) and without (Pred-All, as part-clipseg's copy of the baseline
evaluates it); network outputs, image-size probabilities and the label maps the official evaluators score
must match.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .official import OfficialCase, assert_close, assert_same_labels, convert_clipseg_family, strided

CASE = "clipseg_ovparts"
IGNORE = 255


@pytest.fixture(scope="module")
def case():
    return OfficialCase.load(CASE)


@pytest.fixture(scope="module")
def converted(case, tmp_path_factory, clip_bpe_tokenizer_dir):
    out = tmp_path_factory.mktemp("clipseg") / "model"
    return convert_clipseg_family(case, "clipseg", "ov-parts", clip_bpe_tokenizer_dir, out)


@pytest.fixture(scope="module")
def segmenter(converted):
    import ovparts
    from ovparts.inference import Segmenter

    return Segmenter(ovparts.load_model("clipseg", weights=str(converted)), keep_scores=True)


@pytest.fixture(scope="module")
def vocab(case):
    from ovparts.vocabulary import Vocabulary

    return Vocabulary.from_names(case.info["classes"])


def test_fixture_is_discriminating(case):
    """Probabilities spread and several labels: a wrong model cannot pass by accident."""
    out = case.outputs
    assert out["part_probs"].std() > 0.1
    labels = out["oracle_obj_labels"]
    assert len(torch.unique(labels[labels != IGNORE])) >= 4


def test_network_outputs(case, segmenter, vocab, chelsea):
    """Decoder outputs at 352 x 352: one map per part, then the non-object vector's."""
    logits = segmenter.logits(chelsea, vocab)
    ours = torch.cat([logits.parts, logits.background], dim=1)[0]
    assert_close(strided(case, ours), case.outputs["logits"], "part + non-object logits")


def test_oracle_obj(case, segmenter, vocab, chelsea):
    mask = case.outputs["object_mask"].numpy().astype(bool)
    objects = np.where(mask, vocab.objects.index(case.info["object"]), -1)
    result = segmenter(chelsea, vocab, object_mask=objects)
    assert_close(
        strided(case, torch.from_numpy(result.part_scores)), case.outputs["part_probs"], "part probabilities"
    )
    official = case.outputs["oracle_obj_labels"]
    # the evaluator scores pixels inside its own (resized) copy of the object mask
    where = mask & (official.numpy() != IGNORE)
    ties = case.outputs["oracle_obj_ties"]
    assert_same_labels(result.part_map, official, "Oracle-Obj label map", ties, where=where)


def test_pred_all(case, segmenter, vocab, chelsea):
    """Pred-All as part-clipseg's copy of the baseline evaluates it: argmax over the parts and the non-object
    map (index T), no object gating."""
    result = segmenter(chelsea, vocab)
    tokens = len(vocab)
    assert_close(
        strided(case, torch.from_numpy(result.part_scores)), case.outputs["part_probs"], "part probabilities"
    )
    labels = np.where(result.part_map < 0, tokens, result.part_map)
    official, ties = case.outputs["pred_all_labels"], case.outputs["pred_all_ties"]
    assert_same_labels(labels, official, "Pred-All label map", ties)
