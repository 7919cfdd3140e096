import pytest
from torch import nn

import ovparts
from ovparts.errors import ConfigError
from ovparts.training.scopes import apply_scope


@pytest.fixture(scope="module")
def ov_parts_clipseg():
    return ovparts.load_model(
        "clipseg", config={"base": "tiny", "visual_adapter": True, "non_object_embedding": True}
    )


def test_va_l_f_d_scope_matches_the_official_trainable_set(ov_parts_clipseg):
    names = apply_scope(ov_parts_clipseg, "va+l+f+d")
    assert any(n.startswith("visual_adapter.") for n in names)
    assert any("text_model.embeddings.token_embedding" in n for n in names)
    assert any("text_model.embeddings.position_embedding" in n for n in names)
    assert any(n.startswith("decoder.film_mul") for n in names)
    assert "non_object_embedding" not in names
    assert not any("encoder.layers" in n and n.startswith("backbone") for n in names)
    assert not any("vision_model" in n for n in names)


def test_all_list_and_model_scopes(ov_parts_clipseg):
    everything = apply_scope(ov_parts_clipseg, "all")
    assert len(everything) == len(list(ov_parts_clipseg.parameters()))
    assert apply_scope(ov_parts_clipseg, ["film"]) == [
        "decoder.film_mul.weight",
        "decoder.film_mul.bias",
        "decoder.film_add.weight",
        "decoder.film_add.bias",
    ]

    class Chooser(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def trainable_parameters(self):
            return list(self.b.parameters())

    assert apply_scope(Chooser(), "model") == ["b.weight", "b.bias"]


def test_bad_scopes(ov_parts_clipseg):
    with pytest.raises(ConfigError, match="Unknown trainable scope"):
        apply_scope(ov_parts_clipseg, "everything")
    with pytest.raises(ConfigError, match="selects no parameter"):
        apply_scope(ov_parts_clipseg, ["no_such_name"])
