"""The Evaluator object (reset / process / evaluate), its shards, and the one list of each choice."""

import numpy as np
import pytest
from click.testing import CliRunner

import ovparts
from ovparts.cli import main
from ovparts.data import load_dataset
from ovparts.data.io import read_rgb
from ovparts.evaluation import BOUNDARY_MODES, PROTOCOLS, RULES, Evaluator, predict
from ovparts.evaluation.runner import run_config
from ovparts.vocabulary import BENCHMARKS


def _shift(part):
    return np.roll(part, 2, axis=1)


def _feed(evaluator, segmenter, samples, vocabulary):
    for sample in samples:
        image = read_rgb(sample.image_path)
        evaluator.process(sample, predict(evaluator.protocol, segmenter, image, sample, vocabulary))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_evaluator_by_hand_equals_evaluate(synthetic_root, fake_segmenter, protocol):
    """Feeding the evaluator sample by sample gives ``ovparts.evaluate``'s report, every rule."""
    reader = load_dataset("pascal_part_116", synthetic_root)
    seg = fake_segmenter("pascal_part_116", synthetic_root, corrupt=_shift)
    for average in RULES:
        report = ovparts.evaluate(seg, reader, protocol, average, boundary="both", progress=False)
        evaluator = Evaluator(
            reader.vocabulary,
            protocol,
            average,
            boundary="both",
            dataset=reader.name,
            split=reader.split,
            skips=reader.skips,
        )
        evaluator.config = run_config(reader, evaluator, None, None, type(seg).__name__, None)
        _feed(evaluator, seg, list(reader), reader.vocabulary)
        mine = evaluator.evaluate()
        assert mine.to_dict() == report.to_dict(), average
        assert average != "ovparts" or 0 < mine.metrics["mIoU"] < 100  # the shift costs something
        evaluator.reset()
        assert evaluator.images == 0 and not evaluator.confusion.matrix.any()
        assert not evaluator.boundary.intersection.any() and not evaluator.boundary_d2.matrix.any()


def test_shards_merged_or_summed_equal_one_pass(synthetic_root, fake_segmenter):
    reader = load_dataset("ade20k_part_234", synthetic_root)
    seg = fake_segmenter("ade20k_part_234", synthetic_root, corrupt=_shift)
    samples = list(reader)

    def make():
        return Evaluator(reader.vocabulary, "oracle_obj", "partclipseg", boundary="both")

    whole, even, odd = make(), make(), make()
    _feed(whole, seg, samples, reader.vocabulary)
    _feed(even, seg, samples[0::2], reader.vocabulary)
    _feed(odd, seg, samples[1::2], reader.vocabulary)
    assert not np.array_equal(even.state(), whole.state())
    summed = make()
    summed.all_reduce(lambda state: state + __import__("torch").from_numpy(odd.state() + even.state()))
    even.merge(odd)
    for shard in (even, summed):
        assert np.array_equal(shard.state(), whole.state())
        assert shard.evaluate().to_dict() == whole.evaluate().to_dict()
    with pytest.raises(ValueError, match="entries"):
        whole.load_state(np.zeros(3, np.int64))


def test_evaluator_refuses_bad_settings_in_one_sentence():
    vocab = ovparts.Vocabulary.parse("cat: head, tail")
    with pytest.raises(ovparts.OvpartsError, match="averaging rule 'magic'; choose from ovparts"):
        Evaluator(vocab, average="magic")
    with pytest.raises(
        ovparts.OvpartsError, match="protocol 'x'; choose from oracle_obj, pred_all, pred_obj"
    ):
        Evaluator(vocab, protocol="x")
    with pytest.raises(ovparts.OvpartsError, match="boundary mode"):
        Evaluator(vocab, boundary="edges")


def test_command_line_choices_and_errors_read_the_one_lists(tmp_path):
    runner = CliRunner()
    help_text = " ".join(runner.invoke(main, ["evaluate", "--help"]).output.split())
    for names in (PROTOCOLS, tuple(RULES), BOUNDARY_MODES):
        assert "[" + "|".join(names) + "]" in help_text
    assert ", ".join(BENCHMARKS) in help_text
    segment_help = " ".join(runner.invoke(main, ["segment", "--help"]).output.split())
    assert "|".join(BENCHMARKS) in segment_help
    result = runner.invoke(
        main, ["evaluate", "--model", "clipseg", "--dataset", "nowhere", "--root", str(tmp_path)]
    )
    assert result.exit_code == 2 and f"choose from {', '.join(BENCHMARKS)}." in result.output
    assert "Traceback" not in result.output
