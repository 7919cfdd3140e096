import pytest
import torch
from torch import nn

import ovparts
from ovparts.errors import ConfigError
from ovparts.training.objectives import loss_function
from ovparts.vocabulary import Vocabulary

VOCAB = Vocabulary.parse("cat: head, tail; dog: leg")


def _batch(size=64):
    generator = torch.Generator().manual_seed(0)
    return {
        "pixel_values": torch.randn(2, 3, size, size, generator=generator),
        "part_labels": torch.randint(0, 3, (2, size, size), generator=generator),
        "object_labels": torch.randint(0, 2, (2, size, size), generator=generator),
    }


@pytest.mark.parametrize("background", [True, False])
def test_clipseg_loss_trains_the_decoder(background):
    model = ovparts.load_model("clipseg", config={"base": "tiny", "non_object_embedding": background}).train()
    terms = loss_function(model)(model, _batch(), VOCAB, 255)
    assert terms["total"].ndim == 0 and torch.isfinite(terms["total"])
    terms["total"].backward()
    assert model.decoder.film_mul.weight.grad is not None
    assert model.backbone.clip.text_model.embeddings.token_embedding.weight.grad is not None


def test_a_models_own_training_loss_wins():
    class Own(nn.Module):
        name = "clipseg"

        def training_loss(self, batch, vocabulary, ignore_index, scale=1.0):
            return {"total": batch["pixel_values"].mean() * scale}

    terms = loss_function(Own())(Own(), _batch(8), VOCAB, 255, scale=0.0)
    assert terms["total"] == 0


def test_a_model_without_a_loss_is_refused():
    class Nameless(nn.Module):
        name = "nameless"

    with pytest.raises(ConfigError, match="no training loss"):
        loss_function(Nameless())
