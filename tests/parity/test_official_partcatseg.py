"""PartCATSeg against a fixture produced by the official code on a real photo (Pred-All and Oracle-Obj).

The official checkpoint goes through ``ovparts convert partcatseg`` (OpenAI's real BPE tokenizer) and
``ovparts.Segmenter`` on the same photo, vocabulary and object mask; both stages' network outputs, the
image-size probabilities and the label maps of the official evaluator's two protocols must be reproduced.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovparts import Segmenter, Vocabulary, load_model
from ovparts.methods.partcatseg.convert import convert_partcatseg_checkpoint

from .official import OfficialCase, assert_close, assert_same_labels

pytestmark = pytest.mark.slow


CASES = ["partcatseg_voc"]


@pytest.fixture(scope="module", params=CASES)
def run(request, tmp_path_factory, clip_bpe_tokenizer_dir, chelsea):
    case = OfficialCase.load(request.param)
    out = tmp_path_factory.mktemp(case.name)
    convert_partcatseg_checkpoint(case.checkpoint, out, tokenizer=clip_bpe_tokenizer_dir)
    model = load_model("partcatseg", weights=str(out))
    # the official code orders generalized parts and part-bearing objects with sorted()
    vocab = Vocabulary.parse(case.info["ovparts_vocabulary"], official_order=True)
    official_objects = case.info["object_classes"]
    mask = case.outputs["object_mask"].numpy().astype(np.int64)
    ours = np.full(mask.shape, -1, dtype=np.int64)
    for official_id, name in enumerate(official_objects):
        ours[mask == official_id] = vocab.objects.index(name)
    segmenter = Segmenter(model, keep_scores=True)
    network = segmenter.logits(chelsea, vocab)
    pred_all = segmenter(chelsea, vocab)
    oracle = segmenter(chelsea, vocab, object_mask=ours)
    return case, model, vocab, network, pred_all, oracle


def test_the_case_uses_the_vocabulary_ovparts_builds(run):
    case, model, vocab, *_ = run
    assert vocab.part_texts(model.config.text_style) == case.info["class_names"]
    assert list(model.config.template_list) == case.info["prompt_templates"]


def test_object_specific_probabilities_match_the_official_head(run):
    """At 96x96, the sigmoid of the stage-B logits (the official applies it there, before resizing)."""
    case, _, _, network, *_ = run
    ours = torch.cat([network.parts, network.background], dim=1)
    if network.activation == "sigmoid":
        ours = torch.sigmoid(ours)
    else:
        assert network.activation == "identity"
    official = torch.sigmoid(case.outputs["specific_logits"])
    assert_close(ours, official, f"{case.name} object-specific probabilities at 96x96 (stage B)")


def test_part_and_object_logits_match_the_official_first_stage(run):
    case, _, _, network, *_ = run
    extras = network.extras
    ours = torch.cat(
        [extras["generalized_parts"], extras["part_objects"], extras["object_background"]], dim=1
    )
    assert_close(ours, case.outputs["part_object_logits"], f"{case.name} part/object logits (stage A)")


def test_pred_all_probabilities_and_labels_match(run):
    case, _, vocab, _, pred_all, _ = run
    k = len(vocab)
    official = case.outputs["probabilities_all_s4"]
    assert_close(
        pred_all.part_scores[:, ::4, ::4], official[:k], f"{case.name} image-size part probabilities"
    )
    labels = np.where(pred_all.part_map >= 0, pred_all.part_map, k)  # the official background index is K
    ties = case.outputs["ties_pred_all"]
    assert_same_labels(labels, case.outputs["labels_pred_all"], f"{case.name} Pred-All label map", ties)


def test_oracle_obj_labels_match(run):
    case, *_, oracle = run
    assert oracle.protocol == "oracle_obj"
    ties = case.outputs["ties_oracle_obj"]
    official = case.outputs["labels_oracle_obj"]
    assert_same_labels(oracle.part_map, official, f"{case.name} Oracle-Obj label map", ties)
