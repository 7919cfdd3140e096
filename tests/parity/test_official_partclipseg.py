"""PartCLIPSeg against the official code (kaist-cvml/part-clipseg), case ``partclipseg_voc``.

The fixture holds a seeded random checkpoint in the official format and what the official test-time path
computed with it on scikit-image's cat photo (tools/parity/partclipseg.py). Here the checkpoint goes through
``ovparts convert partclipseg`` (its Python API) and ``ovparts.Segmenter``; network outputs, image-size
probabilities and label maps must match.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .official import OfficialCase, assert_close, assert_same_labels, convert_clipseg_family, strided

CASE = "partclipseg_voc"


@pytest.fixture(scope="module")
def case():
    return OfficialCase.load(CASE)


@pytest.fixture(scope="module")
def converted(case, tmp_path_factory, clip_bpe_tokenizer_dir):
    out = tmp_path_factory.mktemp("partclipseg") / "model"
    return convert_clipseg_family(case, "partclipseg", "default", clip_bpe_tokenizer_dir, out)


@pytest.fixture(scope="module")
def segmenter(converted):
    import ovparts
    from ovparts.inference import Segmenter

    return Segmenter(ovparts.load_model("partclipseg", weights=str(converted)), keep_scores=True)


@pytest.fixture(scope="module")
def vocab(case):
    from ovparts.vocabulary import Vocabulary

    return Vocabulary.from_names(case.info["classes"])


def test_fixture_is_discriminating(case):
    """Probabilities spread and several labels: a wrong model cannot pass by accident."""
    out = case.outputs
    assert out["part_probs"].std() > 0.1
    assert len(torch.unique(out["pred_all_labels"])) >= 6
    assert len(torch.unique(out["oracle_obj_labels"][out["object_mask"].bool()])) >= 4


def test_network_outputs(case, segmenter, vocab, chelsea):
    """Decoder outputs at 352 x 352: object-specific parts + background, generalized parts, objects + background."""
    logits = segmenter.logits(chelsea, vocab)
    official, classes = case.outputs["part_obj_logits"], case.outputs["class_logits"]
    parts = torch.cat([logits.parts, logits.background], dim=1)[0]
    assert_close(strided(case, parts), official, "object-specific part + background logits")
    generalized = logits.extras["generalized_parts"][0]
    assert_close(strided(case, generalized), classes[: generalized.shape[0]], "generalized part logits")
    # the official object head is in sorted() order of the part-bearing objects
    names = sorted({name.split("'s")[0] for name in case.info["classes"]})
    start = generalized.shape[0]
    for index, name in enumerate(names):
        ours = logits.objects[0, vocab.objects.index(name)]
        assert_close(strided(case, ours), classes[start + index], f"object logits of {name!r}")
    assert_close(strided(case, logits.object_background[0, 0]), classes[-1], "object background logits")


def test_pred_all(case, segmenter, vocab, chelsea):
    result = segmenter(chelsea, vocab)
    tokens = len(vocab)
    assert_close(
        strided(case, torch.from_numpy(result.part_scores)),
        case.outputs["part_probs"][:tokens],
        "part probabilities",
    )
    labels = np.where(result.part_map < 0, tokens, result.part_map)
    official, ties = case.outputs["pred_all_labels"], case.outputs["pred_all_ties"]
    assert_same_labels(labels, official, "Pred-All label map", ties)


def test_oracle_obj(case, segmenter, vocab, chelsea):
    mask = case.outputs["object_mask"].numpy().astype(bool)
    objects = np.where(mask, vocab.objects.index(case.info["object"]), -1)
    result = segmenter(chelsea, vocab, object_mask=objects)
    own = [i for i, name in enumerate(case.info["classes"]) if name.split("'s")[0] == case.info["object"]]
    ours = strided(case, torch.from_numpy(result.part_scores[own]))
    assert_close(ours, case.outputs["part_probs"][own], "Oracle-Obj part probabilities")
    official, ties = case.outputs["oracle_obj_labels"], case.outputs["oracle_obj_ties"]
    assert_same_labels(result.part_map, official, "Oracle-Obj label map", ties, where=mask)
