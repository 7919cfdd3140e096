from importlib import resources
from pathlib import Path

import pytest

from ovparts.errors import ConfigError
from ovparts.models.registry import model_spec
from ovparts.training.config import (
    RECIPE_DIR,
    apply_overrides,
    find_recipe,
    load_recipe,
    parse_override,
    read_yaml_tree,
    recipe_names,
)
from ovparts.training.objectives import has_training_loss

RECIPES = sorted(p.name for p in RECIPE_DIR.glob("*.yaml"))
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


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
    with pytest.raises(ConfigError, match="neither a file nor a recipe") as err:
        load_recipe("no_such_recipe")
    assert "partclipseg_voc_oracle" in str(err.value)  # the message lists the shipped names


def test_every_recipe_is_found_by_name_inside_the_package(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no checkout around: names resolve through the package alone
    shipped = resources.files("ovparts") / "recipes"
    names = sorted(p.name.removesuffix(".yaml") for p in shipped.iterdir() if p.name.endswith(".yaml"))
    assert names == recipe_names() and "tiny" in names and len(names) == len(RECIPES)
    for name in names:
        path = find_recipe(name)
        assert path.read_bytes() == shipped.joinpath(f"{name}.yaml").read_bytes()
        assert find_recipe(f"{name}.yaml") == path
        load_recipe(name)  # base: includes resolve next to the shipped file


def test_package_data_ships_every_recipe():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert config["packages"]["find"]["where"] == ["src"]
    package = PYPROJECT.parent / "src" / "ovparts"
    assert RECIPE_DIR.resolve() == (package / "recipes").resolve()  # the tests run on this checkout
    shipped = {p for pattern in config["package-data"]["ovparts"] for p in package.glob(pattern)}
    recipes = {p for p in (package / "recipes").rglob("*") if p.is_file() and p.suffix != ".pyc"}
    assert recipes and recipes <= shipped, sorted(str(p) for p in recipes - shipped)
    assert any(p.parent.name == "base" for p in recipes)  # the base/ includes are covered too


@pytest.mark.parametrize("name", RECIPES)
def test_every_shipped_recipe_resolves(name):
    recipe = load_recipe(RECIPE_DIR / name)
    assert recipe.trainer.max_steps >= 1
    assert recipe.data.batch_size >= 1
    assert has_training_loss(model_spec(recipe.model.name).cls)  # every recipe's method has a training loss
    if name != "tiny.yaml":
        assert recipe.trainer.grad_clip == 0.01 and recipe.trainer.seed == 12345678
        assert recipe.name == name.removesuffix(".yaml")
