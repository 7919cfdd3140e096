"""CAT-Seg (CVPR and old releases) against fixtures produced by the official code on a real photo.

Each case's official checkpoint goes through ``ovparts convert catseg`` (with OpenAI's real BPE tokenizer, the shared `clip_bpe_tokenizer_dir` fixture)
and ``ovparts.Segmenter`` on the same photo and vocabulary; the official sliding-window evaluation's
network outputs, folded canvas, final probabilities and label map must be reproduced (docs/parity.md).
"""

from __future__ import annotations

import pytest
import torch

from ovparts import Segmenter, Vocabulary, load_model
from ovparts.methods.catseg.convert import convert_catseg_checkpoint

from .official import OfficialCase, assert_close, assert_same_labels

pytestmark = pytest.mark.slow


CASES = ["catseg_cvpr", "catseg_old"]


@pytest.fixture(scope="module", params=CASES)
def run(request, tmp_path_factory, clip_bpe_tokenizer_dir, chelsea):
    case = OfficialCase.load(request.param)
    out = tmp_path_factory.mktemp(case.name)
    convert_catseg_checkpoint(case.checkpoint, out, tokenizer=clip_bpe_tokenizer_dir)
    model = load_model("catseg", weights=str(out))
    vocab = Vocabulary.parse(case.info["ovparts_vocabulary"])
    # the official argmax has no background: a threshold of 0 makes ovparts' label the argmax too
    segmenter = Segmenter(model, background_threshold=0.0, keep_scores=True)
    heads: list[torch.Tensor] = []
    hook = model.head.register_forward_hook(lambda m, args, output: heads.append(output.detach().clone()))
    try:
        canvas = segmenter.logits(chelsea, vocab)
        result = segmenter(chelsea, vocab)
    finally:
        hook.remove()
    return case, model, vocab, heads[0], canvas, result


def test_the_case_uses_the_vocabulary_ovparts_builds(run):
    case, model, vocab, *_ = run
    assert vocab.part_texts(model.config.text_style) == case.info["class_names"]
    assert list(model.config.template_list) == case.info["prompt_templates"]


def test_network_outputs_match_the_official_head(run):
    case, *_, head, _, _ = run
    assert_close(head, case.outputs["head_logits"], f"{case.name} head logits (windows + global view)")


def test_sliding_window_canvas_matches(run):
    case, *_, canvas, _ = run
    assert canvas.activation == "identity"
    ours = canvas.parts[0][:, ::4, ::4]
    assert_close(ours, case.outputs["canvas_probabilities_s4"], f"{case.name} 640x640 canvas probabilities")


def test_image_size_probabilities_and_labels_match(run):
    case, *_, result = run
    official = case.outputs["probabilities_s4"]
    assert_close(result.part_scores[:, ::4, ::4], official, f"{case.name} image-size probabilities")
    ties = case.outputs["label_ties"]
    assert_same_labels(result.part_map, case.outputs["labels"], f"{case.name} label map", ties)
