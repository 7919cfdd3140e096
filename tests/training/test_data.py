import numpy as np
import pytest
import torch

from ovparts.data import load_dataset
from ovparts.errors import ConfigError
from ovparts.models.base import Preprocess
from ovparts.training.data import StreamSampler, TrainingSet, remap, training_classes
from ovparts.vocabulary import Vocabulary


def test_seen_classes_drop_unseen_objects_and_their_parts():
    vocab = Vocabulary.from_benchmark("pascal_part_116")
    mapping = training_classes(vocab, "seen")
    assert len(mapping.vocabulary.parts) == len(vocab.seen_part_ids) == 74
    assert "dog" not in mapping.vocabulary.objects and "person" in mapping.vocabulary.objects
    dog_head = vocab.names.index("dog's head")
    person_head = vocab.names.index("person's head")
    assert mapping.part_ids[dog_head] == -1
    assert mapping.vocabulary.names[mapping.part_ids[person_head]] == "person's head"
    assert mapping.ignore_index == 255
    labels = np.array([[-1, dog_head, person_head]])
    assert remap(labels, mapping.part_ids).tolist() == [[-1, -1, mapping.part_ids[person_head]]]
    everything = training_classes(vocab, "all")
    assert len(everything.vocabulary.parts) == 116 and (everything.part_ids == np.arange(116)).all()


def test_stream_sampler_splits_ranks_and_resumes():
    def take(sampler, n):
        iterator = iter(sampler)
        return [next(iterator) for _ in range(n)]

    rank0 = take(StreamSampler(2, world_size=2, rank=0), 6)
    rank1 = take(StreamSampler(2, world_size=2, rank=1), 6)
    assert rank0 == [0, 1, 4, 5, 8, 9] and rank1 == [2, 3, 6, 7, 10, 11]
    assert take(StreamSampler(2, world_size=2, rank=0, start=1), 4) == rank0[2:]


@pytest.fixture(scope="module")
def training_set(synthetic_root):
    reader = load_dataset("pascal_part_116", synthetic_root, split="train")
    mapping = training_classes(reader.vocabulary, "seen")
    preprocess = Preprocess((48, 48), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    augment = [{"op": "random_resized_crop", "size": 64}, {"op": "hflip"}]
    return TrainingSet(reader, mapping, augment, preprocess, seed=3)


def test_training_items_are_a_function_of_the_position(training_set):
    item = training_set[5]
    again = training_set[5]
    assert item["pixel_values"].shape == (3, 48, 48) and item["part_labels"].shape == (48, 48)
    assert item["part_labels"].dtype == torch.int64
    torch.testing.assert_close(item["pixel_values"], again["pixel_values"])
    assert torch.equal(item["part_labels"], again["part_labels"])
    labels = item["part_labels"]
    assert ((labels == 255) | ((labels >= 0) & (labels < 74))).all() and (labels < 255).any()


def test_each_epoch_visits_every_image_once(training_set):
    n = len(training_set)
    first = sorted(training_set.index_of(p) for p in range(n))
    second = [training_set.index_of(p) for p in range(n, 2 * n)]
    assert first == list(range(n)) and sorted(second) == list(range(n))


def test_object_subsets_narrow_the_training_classes():
    vocab = Vocabulary.from_benchmark("pascal_part_116")
    mapping = training_classes(vocab, "all", ["dog", "cat"])
    assert mapping.vocabulary.objects == ("cat", "dog")
    assert {p.object for p in mapping.vocabulary.parts} == {"cat", "dog"}
    assert training_classes(vocab, "seen", ["person"]).vocabulary.objects == ("person",)
    with pytest.raises(ConfigError, match="not an object"):
        training_classes(vocab, "seen", ["unicorn"])
    with pytest.raises(ConfigError, match="hold no part"):
        training_classes(vocab, "seen", ["dog"])  # dog is unseen in Pascal-Part-116
