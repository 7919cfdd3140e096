"""Learning check: the tiny model, trained on CPU for a fixed number of steps on synthetic data, segments the
parts of its training images far better than the same model untrained.

The synthetic parts differ by colour only, so a model that learns anything separates them. The check evaluates
with the library's evaluator (Oracle-Obj, seen-class mIoU) on the images it trained on: it tests that the
engine trains (loss, gradients, optimiser, data, labels all wired right), not zero-shot generalisation.
"""

import lightning.pytorch as pl
import numpy as np
import pytest

import ovparts
from ovparts.data import load_dataset
from ovparts.training import train
from ovparts.training.runner import build_model

pytestmark = pytest.mark.slow


STEPS = 100


def _seen_objects_with_parts(root) -> list[str]:
    reader = load_dataset("pascal_part_116", root, split="train")
    present = set()
    for sample in reader:
        for region in sample.regions:
            present.add(reader.vocabulary.objects[region.object_id])
    return sorted(present - set(reader.vocabulary.unseen_objects))


def test_tiny_model_learns_the_synthetic_parts(tiny_recipe, synthetic_root):
    objects = _seen_objects_with_parts(synthetic_root)
    recipe = tiny_recipe(
        f"data.objects=[{', '.join(objects)}]",
        "data.val_split=train",
        "data.augment=[{op: hflip, p: 0.5}]",
        "model.scope=all",
        "optim.lr=5e-3",
        "schedule.name=constant",
        f"trainer.max_steps={STEPS}",
        f"eval.every={STEPS}",
        "trainer.checkpoint_every=0",
    )
    pl.seed_everything(recipe.trainer.seed, verbose=False)  # the very initialisation train() starts from
    untrained = build_model(recipe.model).eval()
    reader = load_dataset("pascal_part_116", synthetic_root, split="train")
    before = ovparts.evaluate(untrained, reader, protocol="oracle_obj", progress=False).metrics["mIoU-seen"]
    after = train(recipe, export=False).metrics["mIoU-seen"]
    print(f"learning check: seen mIoU {before:.1f} untrained -> {after:.1f} after {STEPS} steps")
    assert not np.isnan(after)
    # Measured on CPU: 5.6-5.8 -> 24.6-25.4 (torch 2.13). Chance-level models stay near the untrained figure.
    assert after >= max(2 * before, before + 12), (before, after)
