from pathlib import Path

import pytest

from ovparts.errors import ConfigError
from ovparts.training.config import CONFIG_DIR, apply_overrides, load_recipe, parse_override, read_yaml_tree
from ovparts.training.objectives import _ADAPTERS as ADAPTERS

RECIPES = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))


def test_overrides_are_read_as_yaml_values():
    assert parse_override("optim.lr=2e-4") == (["optim", "lr"], 2e-4)
    assert parse_override("trainer.devices=[0,1]") == (["trainer", "devices"], [0, 1])
    assert parse_override("model.weights=null") == (["model", "weights"], None)
    tree = apply_overrides({"optim": {"lr": 1.0}}, ["optim.lr=0.5", "eval.limit=3"])
    assert tree == {"optim": {"lr": 0.5}, "eval": {"limit": 3}}


def test_tiny_recipe_with_overrides():
    recipe = load_recipe("tiny", ["optim.lr=0.5", "trainer.max_steps=7", "name=x", "out_dir=/tmp/${name}"])
    assert recipe.optim.lr == 0.5 and recipe.trainer.max_steps == 7
    assert recipe.output_dir == Path("/tmp/x")
    assert "max_steps: 7" in recipe.to_yaml()


@pytest.mark.parametrize(
    "override, words",
    [
        ("optim.lrr=1", "optim.lrr"),
        ("bogus.x=1", "bogus"),
        ("trainer.max_steps=0", "max_steps"),
        ("data.classes=some", "data.classes"),
        ("schedule.name=step", "schedule.name"),
        ("no_equals_sign", "section.key=value"),
    ],
)
def test_bad_recipes_are_refused_with_a_sentence(override, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_recipe("tiny", [override])


def test_base_include_and_cycles(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\noptim: {lr: 1.0, weight_decay: 0.5}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\noptim: {lr: 2.0}\n")
    tree = read_yaml_tree(tmp_path / "b.yaml")
    assert tree == {"name": "b", "optim": {"lr": 2.0, "weight_decay": 0.5}}
    (tmp_path / "c.yaml").write_text("base: d.yaml\n")
    (tmp_path / "d.yaml").write_text("base: c.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        read_yaml_tree(tmp_path / "c.yaml")


def test_missing_recipe():
    with pytest.raises(ConfigError, match="neither a file nor a recipe"):
        load_recipe("no_such_recipe")


@pytest.mark.parametrize("name", RECIPES)
def test_every_shipped_recipe_resolves(name):
    recipe = load_recipe(CONFIG_DIR / name)
    assert recipe.trainer.max_steps >= 1
    assert recipe.data.batch_size >= 1
    assert recipe.model.name in ADAPTERS  # every recipe's method has a training loss
    if name != "tiny.yaml":
        assert recipe.trainer.grad_clip == 0.01 and recipe.trainer.seed == 12345678
        assert recipe.name == name.removesuffix(".yaml")
