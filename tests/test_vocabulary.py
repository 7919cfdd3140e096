import numpy as np
import pytest

from ovparts import Vocabulary
from ovparts.errors import VocabularyError
from ovparts.text.templates import IMAGENET_TEMPLATES
from ovparts.vocabulary import BENCHMARKS, prompts


def test_parse_objects_parts_and_generalized_parts():
    vocab = Vocabulary.parse("dog: head, torso, leg, tail; cat: head, ear")
    assert vocab.objects == ("dog", "cat")
    assert vocab.names == ["dog's head", "dog's torso", "dog's leg", "dog's tail", "cat's head", "cat's ear"]
    assert [p.id for p in vocab.parts] == list(range(6))
    assert vocab.generalized_parts == ("head", "torso", "leg", "tail", "ear")
    assert vocab.part_to_object.tolist() == [0, 0, 0, 0, 1, 1]
    assert vocab.part_to_generalized.tolist() == [0, 1, 2, 3, 0, 4]
    assert vocab.parts_of("cat") == [4, 5]
    assert vocab.part_texts("plain")[0] == "dog head"


def test_official_order_sorts_generalized_parts_and_objects():
    vocab = Vocabulary.parse("dog: torso, head; cat: ear", official_order=True)
    assert vocab.generalized_parts == ("ear", "head", "torso")
    assert vocab.part_objects == ("cat", "dog")
    assert vocab.part_to_part_object.tolist() == [1, 1, 0]
    # ids of object-specific parts never move: label maps depend on them
    assert vocab.names == ["dog's torso", "dog's head", "cat's ear"]


def test_other_input_forms_agree():
    a = Vocabulary.parse("dog: head, tail\ncat: ear")
    b = Vocabulary.parse("dog's head, dog's tail, cat's ear")
    c = Vocabulary.from_names(["dog's head", "dog's tail", "cat's ear"])
    assert a == b == c


@pytest.mark.parametrize(
    "text",
    [
        "dog: head, tail; cat: ear",
        "boat; dog: head; sofa; cat: ear, tail",
        "dog's head, cat's ear, dog's tail",
        "Indian cobra: head, body",
    ],
)
def test_format_round_trip(text):
    vocab = Vocabulary.parse(text)
    again = Vocabulary.parse(vocab.format())
    assert again == vocab
    assert again.objects == vocab.objects


def test_parse_deduplicates_and_keeps_objects_without_parts():
    vocab = Vocabulary.parse("boat; dog: head, head ,  tail")
    assert vocab.objects == ("boat", "dog")
    assert vocab.names == ["dog's head", "dog's tail"]
    assert vocab.object_to_part_object.tolist() == [-1, 0]


@pytest.mark.parametrize(
    "bad",
    ["", " ;; ", "dog:", "dog: head\x07", ": head", "boat; sofa"],
)
def test_bad_vocabularies_raise_one_sentence(bad):
    with pytest.raises(VocabularyError) as info:
        Vocabulary.parse(bad)
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message


def test_from_names_rejects_duplicates_and_non_possessive():
    with pytest.raises(VocabularyError, match="twice"):
        Vocabulary.from_names(["dog's head", "dog's head"])
    with pytest.raises(VocabularyError, match="object's part"):
        Vocabulary.from_names(["dog head"])


@pytest.mark.parametrize(
    ("name", "n_objects", "n_parts", "n_seen", "n_generalized"),
    [
        ("pascal_part_116", 20, 116, 74, 42),
        ("ade20k_part_234", 44, 234, 176, 85),
        ("partimagenet", 40, 147, 92, 13),
    ],
)
def test_benchmarks_match_tables(name, n_objects, n_parts, n_seen, n_generalized):
    vocab = Vocabulary.from_benchmark(name)
    assert len(vocab.objects) == n_objects and len(vocab) == n_parts
    assert len(vocab.seen_part_ids) == n_seen
    assert len(vocab.generalized_parts) == n_generalized
    official = vocab.with_official_order()
    assert list(official.generalized_parts) == sorted(vocab.generalized_parts)
    assert vocab.name == name and vocab.ignore_label in (255, 65535)


def test_pascal_unseen_objects_and_part_object_map():
    vocab = Vocabulary.from_benchmark("pascal_part_116")
    unseen = {vocab.objects[i] for i, seen in enumerate(vocab.object_seen) if not seen}
    assert unseen == {"bird", "car", "dog", "sheep", "motorbike"}
    for pid in vocab.unseen_part_ids:
        assert vocab.objects[vocab.part_to_object[pid]] in unseen
    # objects without part classes are kept (boat, chair, ...) but have no part object index
    assert (vocab.object_to_part_object == -1).sum() == 4


def test_all_benchmarks_load():
    for name in BENCHMARKS:
        assert len(Vocabulary.from_benchmark(name)) > 0


def test_prompts_with_templates():
    out = prompts(["dog's head"], "imagenet")
    assert len(out[0]) == 80 == len(IMAGENET_TEMPLATES)
    assert out[0][0] == "a bad photo of a dog's head."
    assert prompts(["x", "y"], "none") == [["x"], ["y"]]
    assert np.array(prompts(["a", "b"], ["{} 1", "{} 2"])).shape == (2, 2)
