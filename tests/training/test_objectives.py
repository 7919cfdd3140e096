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


@pytest.mark.parametrize("name", ovparts.available_models())
def test_every_registered_model_trains_through_its_adapter(name):
    """Each method's loss runs on the engine's batch and sends gradients to its trainable parameters."""
    model = ovparts.load_model(name, config="tiny").train()
    size = model.preprocess.size
    batch = _batch(size[0]) if size[0] == size[1] else None
    assert batch is not None, f"{name}'s tiny config is not square"
    terms = loss_function(model)(model, batch, VOCAB, 255)
    assert torch.isfinite(terms["total"]) and terms["total"].ndim == 0
    terms["total"].backward()
    trained = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is not None]
    assert trained, f"no gradient reached {name}"
