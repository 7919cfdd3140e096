"""End to end in one process: a few steps of the tiny recipe, logs, checkpoint, export, `ovparts segment`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import ovparts
from ovparts.cli import main
from ovparts.training import train
from ovparts.training.config import RECIPE_DIR, load_recipe

# the method the tiny recipe trains (its own tests run it); every other registered method runs below
TINY_RECIPE_MODEL = load_recipe(RECIPE_DIR / "tiny.yaml").model.name


@pytest.mark.slow
def test_short_run_logs_checkpoints_and_exports(tiny_recipe, tmp_path):
    recipe = tiny_recipe(
        "trainer.max_steps=4",
        "trainer.checkpoint_every=2",
        "trainer.loggers=[csv, tensorboard]",
        "data.batch_size=2",
        "eval.every=2",
        "eval.limit=2",
        "trainer.log_every_n_steps=1",
    )
    result = train(recipe)
    out = result.out_dir
    assert result.steps == 4 and result.trainable_parameters > 0
    assert set(result.metrics) >= {"mIoU", "mIoU-seen"}
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "recipe.yaml").is_file()
    header = (out / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "train/lr", "train/img_per_s", "val/mIoU-seen", "val/h-IoU"} <= set(header)
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert json.loads((result.export_dir / "config.json").read_text())["ovparts_model"] == "clipseg"

    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(image)
    args = ["segment", str(image), "--vocab", "cat: head, tail", "--weights", str(result.export_dir)]
    done = CliRunner().invoke(main, [*args, "--model", "clipseg", "--out", str(tmp_path / "seg")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "seg" / "photo.parts.png").is_file()


def test_train_command_prints_the_resolved_recipe(synthetic_root, tmp_path):
    args = ["train", "tiny", "optim.lr=0.5", f"data.root={synthetic_root}", "--devices", "1", "--dry-run"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert "lr: 0.5" in done.output and "devices: 1" in done.output


def test_train_command_bad_override_is_one_sentence():
    done = CliRunner().invoke(main, ["train", "tiny", "optim.nope=1", "--dry-run"])
    assert done.exit_code == 2
    assert "Unknown recipe key optim.nope" in done.output


@pytest.mark.parametrize("name", [n for n in ovparts.available_models() if n != TINY_RECIPE_MODEL])
@pytest.mark.slow
def test_every_method_runs_a_few_steps_and_exports(tiny_recipe, name):
    """Adding a method needs no change to the engine: its tiny config trains (in bf16 mixed precision, which
    CPUs run too), evaluates and exports."""
    recipe = tiny_recipe(
        f"model.name={name}",
        "model.config=tiny",
        "model.scope=model",
        "trainer.max_steps=2",
        "trainer.checkpoint_every=0",
        "data.batch_size=2",
        "eval.every=2",
        "eval.limit=1",
        "trainer.precision=bf16-mixed",
    )
    result = train(recipe)
    assert result.steps == 2 and "mIoU" in result.metrics
    reloaded = ovparts.load_model(name, weights=str(result.export_dir))
    assert type(reloaded).__name__ == type(result.model).__name__


def test_fsdp_on_cpu_is_refused_with_a_sentence(synthetic_root):
    args = ["train", "tiny", f"data.root={synthetic_root}", "--strategy", "fsdp", "--accelerator", "cpu"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 2
    assert "FSDP needs GPUs" in done.output
