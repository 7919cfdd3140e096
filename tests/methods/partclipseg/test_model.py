import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import ovparts
from ovparts.cli import main
from ovparts.methods.clipseg.model import ClipSeg
from ovparts.methods.partclipseg.model import PartClipSeg, class_layout

VOCAB = "dog: tail, head, leg; cat: head, ear; boat"


@pytest.fixture(scope="module")
def vocab():
    return ovparts.Vocabulary.parse(VOCAB)


@pytest.fixture(scope="module")
def model(tiny_clipseg_dir):
    """PartCLIPSeg initialised from a (tiny) transformers CLIPSeg checkpoint, as the official code starts."""
    torch.manual_seed(0)
    return ovparts.load_model("partclipseg", weights=str(tiny_clipseg_dir))


def test_registered_with_tiny_and_default_configs():
    assert "partclipseg" in ovparts.available_models()
    from ovparts.models.registry import model_spec

    assert {"tiny", "default"} <= set(model_spec("partclipseg").configs)


def test_class_layout_default_and_faithful_order(vocab):
    fixed = class_layout(vocab, faithful=False)
    official = class_layout(vocab, faithful=True)
    assert fixed.texts == ("tail", "head", "leg", "ear", "dog", "cat")  # first appearance
    assert official.texts == ("ear", "head", "leg", "tail", "cat", "dog")  # Python sorted()
    # parts: dog's tail, dog's head, dog's leg, cat's head, cat's ear
    assert official.part_index.tolist() == [3, 1, 2, 1, 0]
    assert official.object_index.tolist() == [4 + 1, 4 + 1, 4 + 1, 4 + 0, 4 + 0]
    # the official text index forgets the P offset: "dog" (o=1) reads the embedding of "head" (index 1)
    assert official.text_object_index.tolist() == [1, 1, 1, 0, 0]
    assert fixed.text_object_index.tolist() == fixed.object_index.tolist()
    assert fixed.object_to_part_object.tolist() == [0, 1, -1]  # the boat has no parts


def test_shapes(model, vocab):
    layout = model.layout(vocab)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(pixels, model.conditions(layout), layout, return_attention=True)
        logits = model.predict(pixels, vocab)
    n = layout.num_classes
    assert n == 4 + 2 + 1  # tail, head, leg, ear + dog, cat + background
    assert out.part_logits.shape == (2, len(vocab) + 1, 64, 64)
    assert out.class_logits.shape == (2, n, 64, 64)
    heads = model.config.decoder_num_attention_heads
    assert out.attention.shape == (2, n, heads, 1 + 16, 1 + 16)
    assert logits.parts.shape == (2, len(vocab), 64, 64) and logits.background.shape == (2, 1, 64, 64)
    assert logits.objects.shape == (2, len(vocab.objects), 64, 64)
    assert logits.object_background.shape == (2, 1, 64, 64)
    assert (logits.objects[:, 2] < -1000).all()  # the boat, an object without parts, is never predicted


def test_initialised_from_clipseg_checkpoint(model, tiny_clipseg_dir):
    decoder = model.decoder
    for copy, source in [
        (decoder.cond_film_mul, decoder.film_mul),
        (decoder.cond_film_add, decoder.film_add),
        (decoder.part_obj_with_cond_embed, decoder.transposed_convolution),
    ]:
        for (name, a), b in zip(copy.state_dict().items(), source.state_dict().values(), strict=True):
            assert torch.equal(a, b), name
    assert decoder.part_obj_mlp[0].bias.abs().sum() == 0 and decoder.reduce_cond_embed.bias.abs().sum() == 0
    clipseg = ovparts.load_model("clipseg", weights=str(tiny_clipseg_dir))
    ours = model.state_dict()
    for key, value in clipseg.state_dict().items():
        assert torch.equal(ours[key], value), key


def test_trunk_is_clipseg(model, vocab):
    """The generalized-part / object / background logits are plain CLIPSeg logits for those texts."""
    layout = model.layout(vocab)
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        conditions = model.conditions(layout)
        ours = model(pixels, conditions, layout).class_logits
        plain = ClipSeg.forward(model, pixels, conditions).logits
    torch.testing.assert_close(ours, plain)


def official_composition(model, pixels, conditions, layout):
    """A direct per-class transcription of the official decoder's second half (activations repeated)."""
    features = ClipSeg.forward(model, pixels, conditions, return_features=True).features[0]  # (N, r, h, w)
    d = model.decoder
    indices = (layout.part_index, layout.object_index, layout.text_object_index)
    entries = list(zip(*(i.tolist() for i in indices), strict=True))
    bg = conditions.shape[0] - 1
    entries.append((bg, bg, bg))
    logits = []
    for p, o, e in entries:
        visual = torch.cat([features[p], features[o]]).permute(1, 2, 0)  # (h, w, 2r)
        fused = d.part_obj_mlp(visual)
        text = d.reduce_cond_embed(torch.cat([conditions[e], conditions[p]]))
        film = d.cond_film_mul(text) * fused + d.cond_film_add(text)
        logits.append(d.part_obj_with_cond_embed(film.permute(2, 0, 1)[None])[0, 0])
    return torch.stack(logits)[None]


@pytest.mark.parametrize("faithful", [False, True])
def test_object_specific_logits_match_official_math(model, vocab, faithful):
    model.config.faithful = faithful
    try:
        model.decoder.class_chunk = 2  # chunking must not change anything
        layout = model.layout(vocab)
        pixels = torch.randn(1, 3, 64, 64, dtype=torch.float64)
        m = model.double()
        with torch.no_grad():
            conditions = m.conditions(layout)
            ours = m(pixels, conditions, layout).part_logits
            reference = official_composition(m, pixels, conditions, layout)
        torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-9)
    finally:
        model.config.faithful = False
        model.decoder.class_chunk = model.config.class_chunk
        model.float()


def test_faithful_text_index_changes_outputs(model, vocab):
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fixed = model.predict(pixels, vocab)
        model.config.faithful = True
        try:
            official = model.predict(pixels, vocab)
        finally:
            model.config.faithful = False
    # same trunk (order-independent per class), different second FiLM input for object-specific parts
    torch.testing.assert_close(official.object_background, fixed.object_background)
    assert not torch.allclose(official.parts, fixed.parts)


@pytest.fixture(scope="module")
def calm_model(tiny_clipseg_dir):
    """Random weights give logits in the hundreds, whose sigmoids tie at exactly 0 or 1; scaling the last
    layer of both heads keeps probabilities distinct so that argmax comparisons are meaningful."""
    torch.manual_seed(0)
    model = ovparts.load_model("partclipseg", weights=str(tiny_clipseg_dir))
    with torch.no_grad():
        for head in (model.decoder.transposed_convolution, model.decoder.part_obj_with_cond_embed):
            head[4].weight.mul_(0.02)
            head[4].bias.mul_(0.02)
    return model


def probabilities(logits, size):
    return torch.sigmoid(F.interpolate(logits, size=size, mode="bilinear", align_corners=False))[0]


def test_pred_all_as_official(calm_model, vocab, chelsea):
    """Section 4.2: the object head's argmax gates the parts; background where it says "no object"."""
    model = calm_model
    seg = ovparts.Segmenter(model)
    with torch.no_grad():
        result = seg(chelsea, vocab)
        logits = seg.logits(chelsea, vocab)
    size = chelsea.shape[:2]
    q = probabilities(torch.cat([logits.parts, logits.background], 1), size)  # (T+1, H, W)
    layout = model.layout(vocab)
    objects = probabilities(
        torch.cat([logits.objects[:, : layout.num_objects], logits.object_background], 1), size
    )
    decision = objects.argmax(0)  # O objects then background; the boat comes after, never wins
    gate = F.one_hot(decision, layout.num_objects + 1).permute(2, 0, 1).float()
    q[:-1] *= gate[layout.part_to_object]
    q[-1] *= gate[-1]
    expected = q.argmax(0)
    expected = torch.where(expected == len(vocab), -1, expected).numpy()
    assert result.protocol == "pred_all"
    np.testing.assert_array_equal(result.part_map, expected)
    expected_objects = torch.where(decision == layout.num_objects, -1, decision).numpy()
    np.testing.assert_array_equal(result.object_map, expected_objects)
    # every labelled pixel's part belongs to its predicted object
    labelled = result.part_map >= 0
    assert (vocab.part_to_object[result.part_map[labelled]] == result.object_map[labelled]).all()


def test_oracle_obj_as_official(calm_model, vocab, chelsea):
    """Section 4.2: parts of objects absent from the GT are zeroed; background is not a candidate."""
    size = chelsea.shape[:2]
    mask = np.full(size, 255, dtype=np.uint8)
    mask[50:200, 100:300] = 1  # a cat
    seg = ovparts.Segmenter(calm_model)
    with torch.no_grad():
        result = seg(chelsea, vocab, object_mask=mask)
        logits = seg.logits(chelsea, vocab)
    preds = probabilities(logits.parts, size)
    cat_parts = vocab.parts_of("cat")
    preds[[i for i in range(len(vocab)) if i not in cat_parts]] = 0.0
    expected = preds.argmax(0).numpy()
    inside = mask == 1
    assert result.protocol == "oracle_obj"
    np.testing.assert_array_equal(result.part_map[inside], expected[inside])
    assert (result.part_map[~inside] == -1).all()
    assert set(np.unique(result.part_map[inside])) <= set(cat_parts)


def test_save_load_round_trip(tmp_path, vocab):
    model = ovparts.load_model("partclipseg", config={"base": "tiny", "faithful": True})
    model.save_pretrained(tmp_path / "ckpt")
    again = ovparts.load_model("partclipseg", weights=str(tmp_path / "ckpt"))
    assert isinstance(again, PartClipSeg) and again.config.faithful
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model.predict(pixels, vocab), again.predict(pixels, vocab)
    torch.testing.assert_close(a.parts, b.parts)
    torch.testing.assert_close(a.objects, b.objects)


def test_faithful_training_input_is_bgr():
    model = ovparts.load_model("partclipseg", config={"base": "tiny", "faithful": True})
    raw = torch.rand(1, 3, 4, 4)
    mean = torch.tensor(model.config.pixel_mean).view(1, 3, 1, 1)
    std = torch.tensor(model.config.pixel_std).view(1, 3, 1, 1)
    bgr = model.training_pixels((raw - mean) / std)
    torch.testing.assert_close(bgr, (raw.flip(1) - mean) / std)
    labels = torch.full((1, 64, 64), -1)
    labels[0, 8:40, 8:40] = 0
    terms = model.loss(torch.randn(1, 3, 64, 64), ovparts.Vocabulary.parse("cat: ear"), labels, labels, -1)
    assert torch.isfinite(terms["total"]) and not terms["separation"].requires_grad  # official: no gradient
    model.config.faithful = False
    assert torch.equal(model.training_pixels(raw), raw)


@pytest.fixture(scope="module")
def pascal_root(tmp_path_factory):
    from ovparts.data import write_synthetic

    root = tmp_path_factory.mktemp("pascal")
    write_synthetic("pascal_part_116", root, images_per_split=2)
    return root


def training_batch(root, model):
    """Synthetic Pascal-Part-116 train images with a train vocabulary of seen parts only.

    To keep the test fast the vocabulary holds the seen parts of the objects drawn in these images (the
    official one holds all 74). Label ids are remapped from the benchmark's to the train vocabulary's;
    unseen parts and objects without parts become unlabelled (-1), as the official training registers them.
    """
    from PIL import Image

    from ovparts.data import load_dataset

    full = ovparts.Vocabulary.from_benchmark("pascal_part_116")
    samples = list(load_dataset("pascal_part_116", root, split="train"))
    drawn = {full.objects[o] for s in samples for o in np.unique(s.object_map) if o >= 0}
    train = ovparts.Vocabulary.from_names([p.name for p in full.parts if p.seen and p.object in drawn])
    part_ids = {p.name: p.id for p in train.parts}
    part_map = np.array([part_ids.get(p.name, -1) for p in full.parts] + [-1])
    object_map = np.array([train.objects.index(o) if o in train.objects else -1 for o in full.objects] + [-1])
    seg = ovparts.Segmenter(model)
    pixels, parts, objects = [], [], []
    for sample in samples:
        pixels.append(seg.pixel_values(Image.open(sample.image_path).convert("RGB"))[0])
        parts.append(torch.as_tensor(part_map[sample.part_map]))  # -1 indexes the trailing -1
        objects.append(torch.as_tensor(object_map[sample.object_map]))
    assert len(pixels) == 2 and any((p >= 0).any() for p in parts)
    return train, torch.stack(pixels), torch.stack(parts), torch.stack(objects)


@pytest.mark.slow
def test_training_steps_lower_the_loss(pascal_root):
    torch.manual_seed(0)
    model = ovparts.load_model("partclipseg", config="tiny").train()
    for p in model.parameters():
        p.requires_grad_(False)
    params = model.trainable_parameters()
    for p in params:
        p.requires_grad_(True)
    assert not any(p is model.non_object_embedding for p in params)
    vocab, pixels, parts, objects = training_batch(pascal_root, model)
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=1e-4)

    def total():
        with torch.no_grad():
            return model.loss(pixels, vocab, parts, objects, ignore_index=-1)["total"].item()

    before = total()
    for _ in range(5):
        terms = model.loss(pixels, vocab, parts, objects, ignore_index=-1)
        assert set(terms) == {"part_object", "part", "object", "separation", "enhancement", "total"}
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
    assert total() < 0.9 * before


@pytest.mark.parametrize("protocol", ["oracle_obj", "pred_all"])
def test_evaluate_cli_with_tiny_partclipseg(pascal_root, tmp_path, protocol):
    import json

    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--model", "partclipseg", "--config", "tiny", "--dataset", "pascal_part_116",
            "--root", str(pascal_root), "--protocol", protocol, "--average", "partclipseg",
            "--limit", "1", "--out", str(out), "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["counts"]["images"] == 1 and 0 <= data["metrics"]["mIoU"] <= 100


def test_segment_cli_with_tiny_partclipseg(chelsea_path, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "segment",
            str(chelsea_path),
            "--model",
            "partclipseg",
            "--config",
            "tiny",
            "--vocab",
            "cat: head, ear, leg",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "chelsea.parts.png").is_file() and (out / "chelsea.json").is_file()


@pytest.mark.parametrize(
    "benchmark, train, test",
    [
        ("pascal_part_116", (74, 41, 11, 53), (116, 42, 16, 59)),
        ("ade20k_part_234", (176, 83, 33, 117), (234, 85, 44, 130)),
        ("partimagenet", (92, 13, 25, 39), (147, 13, 40, 54)),
    ],
)
def test_layout_sizes_match_the_official_tables(benchmark, train, test):
    """T / P / O / N of the official train (seen parts) and test vocabularies."""
    full = ovparts.Vocabulary.from_benchmark(benchmark)
    seen = ovparts.Vocabulary.from_names([p.name for p in full.parts if p.seen])
    for vocab, expected in [(seen, train), (full, test)]:
        layout = class_layout(vocab, faithful=True)
        assert (len(vocab), layout.num_generalized, layout.num_objects, layout.num_classes) == expected


def test_official_index_quirk_on_pascal_train():
    full = ovparts.Vocabulary.from_benchmark("pascal_part_116")
    seen = ovparts.Vocabulary.from_names([p.name for p in full.parts if p.seen])
    layout = class_layout(seen, faithful=True)
    aeroplane = [p.id for p in seen.parts if p.object == "aeroplane"]
    # "aeroplane" is object 0; the official text index reads the generalized part at 0, "back"
    assert {layout.texts[i] for i in layout.text_object_index[aeroplane].tolist()} == {"back"}
    assert {layout.texts[i] for i in layout.object_index[aeroplane].tolist()} == {"aeroplane"}


class ObjectAwareModel(torch.nn.Module):
    """Any model whose PartLogits carry object logits: fixed 2x2 logits for 'a: x, y; b: z'."""

    config = None

    def __init__(self, objects, object_background=None):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.objects, self.object_background = objects, object_background

    @property
    def device(self):
        return self.anchor.device

    @property
    def preprocess(self):
        from ovparts.models.base import Preprocess

        return Preprocess((2, 2))

    def predict(self, pixels, vocab):
        from ovparts.models.base import PartLogits

        parts = torch.tensor([[[3.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0]], [[1.0, 1.0], [5.0, 0.0]]])
        return PartLogits(
            parts=parts[None], objects=self.objects[None], object_background=self.object_background
        )


def test_pred_all_object_gating_is_generic():
    """Segmenter's Pred-All uses PartLogits.objects for any model, with or without an object background."""
    vocab = ovparts.Vocabulary.parse("a: x, y; b: z")
    image = np.zeros((2, 2, 3), np.uint8)
    objects = torch.tensor([[[2.0, 2.0], [-3.0, -3.0]], [[0.0, 0.0], [1.0, -2.0]]])  # a on top, b bottom-left
    result = ovparts.Segmenter(ObjectAwareModel(objects))(image, vocab)  # threshold 0.5, no background
    assert result.object_map.tolist() == [[0, 0], [1, -1]]
    # pixel (1,0): z scores 5 but only b's parts are allowed there, and z is b's only part; (1,1): no object
    assert result.part_map.tolist() == [[0, 1], [2, -1]]
    background = torch.full((1, 1, 2, 2), 10.0)
    result = ovparts.Segmenter(ObjectAwareModel(objects, background))(image, vocab)
    assert (result.object_map == -1).all() and (result.part_map == -1).all()
    assert np.allclose(result.confidence, torch.sigmoid(torch.tensor(10.0)).item())
