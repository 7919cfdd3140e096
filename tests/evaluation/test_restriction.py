"""Oracle-Obj on the present objects' parts only: the same label maps as the full vocabulary, less work."""

import numpy as np
import pytest

import ovparts
from ovparts.data import load_dataset
from ovparts.data.io import read_rgb
from ovparts.evaluation.protocols import oracle_object_mask
from ovparts.evaluation.restriction import independent_classes, masked_part_map, restrict
from ovparts.models.registry import available_models

# every registered method, by whether its classes interact (tiny configs, the default switches)
_TINY = {name: ovparts.load_model(name, config="tiny") for name in available_models()}
INDEPENDENT = [name for name, model in _TINY.items() if model.independent_classes]
INTERACTING = [name for name, model in _TINY.items() if not model.independent_classes]
del _TINY


class Spy:
    """A Segmenter that records the vocabulary size of every call."""

    def __init__(self, segmenter):
        self.segmenter, self.model, self.sizes = segmenter, segmenter.model, []

    def __call__(self, image, vocab, object_mask=None):
        self.sizes.append(len(vocab))
        return self.segmenter(image, vocab, object_mask=object_mask)


def _model(name, **changes):
    model = ovparts.load_model(name, config="tiny")
    if changes:
        model.config = model.config.replace(**changes)
    return model


@pytest.mark.parametrize("name", INDEPENDENT)
def test_restricted_label_maps_equal_the_full_vocabulary(synthetic_root, name):
    model = _model(name)
    assert model.independent_classes
    spy = Spy(ovparts.Segmenter(model))
    reader = load_dataset("pascal_part_116", synthetic_root)
    full_size = len(reader.vocabulary)
    varied = 0
    for sample in reader:
        image = read_rgb(sample.image_path)
        mask = oracle_object_mask(sample.regions, sample.size)
        full = spy(image, reader.vocabulary, object_mask=mask).part_map
        restricted = masked_part_map(spy, image, reader.vocabulary, mask)
        assert np.array_equal(restricted, full)
        present = {int(o) for o in np.unique(mask) if o >= 0}
        assert spy.sizes[-1] == sum(len(reader.vocabulary.parts_of(o)) for o in present) < full_size / 4
        varied += len(np.unique(full[full >= 0])) > 1
    assert varied  # maps with several parts: the equality is not one constant answer


@pytest.mark.parametrize("protocol", ["oracle_obj", "pred_obj"])
def test_evaluate_with_and_without_restriction_gives_the_same_report(synthetic_root, protocol):
    model = _model("clipseg")
    reader = load_dataset("ade20k_part_234", synthetic_root)
    reports = [
        ovparts.evaluate(
            model, reader, protocol, boundary="both", restrict_classes=flag, limit=2, progress=False
        ).to_dict()
        for flag in (True, False)
    ]
    assert reports[0] == reports[1]


def test_interacting_classes_keep_the_full_vocabulary(synthetic_root):
    reader = load_dataset("pascal_part_116", synthetic_root)
    sample = next(iter(reader))
    mask = oracle_object_mask(sample.regions, sample.size)
    for name in INTERACTING:
        spy = Spy(ovparts.Segmenter(ovparts.load_model(name, config="tiny")))
        assert not independent_classes(spy)
        masked_part_map(spy, read_rgb(sample.image_path), reader.vocabulary, mask)
        assert spy.sizes == [len(reader.vocabulary)]
    faithful = _model("partclipseg", faithful=True)  # the object text sits at a vocabulary-wide index
    assert not faithful.independent_classes


def test_restricted_vocabulary_keeps_order_and_maps_back():
    vocab = ovparts.Vocabulary.parse("cat: head, tail; boat; dog: head, leg, tail")
    cut = restrict(vocab, (1, 2))  # boat (no parts) and dog
    assert cut.vocabulary.names == ["dog's head", "dog's leg", "dog's tail"]
    assert cut.vocabulary.objects == ("boat", "dog")
    assert cut.part_ids.tolist() == [2, 3, 4] and cut.object_ids.tolist() == [-1, 0, 1]
    assert restrict(vocab, (1,)).vocabulary is None  # only a part-less object: nothing to run
