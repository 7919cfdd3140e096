"""PartCATSeg: object-aware part cost aggregation (Choi et al., 2025, arXiv 2501.09688).

Reads top to bottom as the method's figure (docs/partcatseg.md):

1. **Encoders.** Frozen CLIP gives dense image features (24 x 24 at 384 px) and per-template text embeddings;
   DINOv2 (fine-tuned at a small learning rate) gives the *structural* guidance maps at 1x, 2x, 4x the grid.
2. **Stage A.** One cost volume over generalized parts ("head"), part-bearing objects ("dog") and a
   background embedding, aggregated by CAT-Seg layers and decoded: generalized-part and object logits.
3. **Stage B.** Each object-specific part ("dog's head") gets the aggregated embeddings of its part and its
   object, concatenated and projected back into CLIP's text space; that feature is re-correlated with the
   class's own text, aggregated by a second stack, and decoded by the *same* decoder: object-specific logits.
4. **Losses** (``losses.py`` beside this file): three BCE terms and a compositional Jensen-Shannon term tying the summed
   part distribution to CLIP's object distribution.

:class:`PartCatSegAggregator` is the head (tensors in, logits out), built from a :class:`CatSegHeadConfig`.
``faithful=True`` reproduces what the published weights depend on; the default fixes defects (see
``docs/partcatseg.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...backbones.clip_dense import apply_finetune
from ...backbones.dino import DinoGuidance, build_dino
from ...backbones.resnet import renormalize
from ...config_checks import as_json
from ...errors import ConfigError
from ...models.base import PartLogits, Preprocess, SegmenterDefaults
from ...models.chunking import resolve_class_chunk
from ...models.clip_text import ClipTextModel, clip_backbone
from ...models.cost_aggregation import CostEmbedding, cosine_cost, map_classes
from ...models.losses import resize_logits
from ...models.stages import stage
from ...preprocessing import encoder_input
from ...vocabulary import Vocabulary
from ..catseg.model import CatSegAggregator, CatSegHeadConfig, CatSegLayer, detectron2_test_chain
from .config import CONFIGS, SWITCHES, PartCatSegConfig
from .losses import compositional_loss, partcatseg_object_loss, partcatseg_part_loss, partcatseg_specific_loss

# Logit of objects without parts in ``PartLogits.objects``: PartCATSeg only scores part-bearing objects.
ABSENT_OBJECT_LOGIT = -100.0


class PartCatSegAggregator(CatSegAggregator):
    """The PartCATSeg head: CAT-Seg's aggregator (stage A, shared decoder) plus the stage-B modules.

    Inherited (stage A, official names in brackets): ``cost_embed`` [conv1], ``guidance_proj``,
    ``text_guidance_proj``, ``decoder_guidance_proj``, ``layers``, ``decoder1/2``, ``head``. Added:
    ``layers_object`` (only with ``object_layers="separate"``), ``cost_embed_specific`` [conv2],
    ``proj_feat`` [conv_proj_feat] and ``layers_specific`` [layers_specific_part].
    """

    def __init__(self, config: CatSegHeadConfig, object_layers: str = "separate") -> None:
        super().__init__(config)
        cfg = self.config
        self.object_layers = object_layers
        self.layers_object = (
            nn.ModuleList(CatSegLayer(cfg) for _ in range(cfg.num_layers))
            if object_layers == "separate"
            else None
        )
        self.cost_embed_specific = CostEmbedding(cfg.prompts, cfg.hidden_dim)
        self.proj_feat = nn.Conv2d(2 * cfg.hidden_dim, cfg.text_dim, kernel_size=1)
        self.layers_specific = nn.ModuleList(CatSegLayer(cfg) for _ in range(cfg.num_layers))

    def copy_stage_a_to_stage_b(self) -> None:
        """Initialise stage B (and the object stack) from stage A, as the official ``__init__`` does."""
        self.cost_embed_specific.load_state_dict(self.cost_embed.state_dict())
        self.layers_specific.load_state_dict(self.layers.state_dict())
        if self.layers_object is not None:
            self.layers_object.load_state_dict(self.layers.state_dict())

    # -- stage A -------------------------------------------------------------------------------------------

    def aggregate_stage_a(
        self,
        x: Tensor,
        appearance: Tensor | None,
        text_guidance: Tensor | None,
        num_parts: int,
        pool: tuple[int, int],
        chunk: int | None,
    ) -> Tensor:
        """Parts, objects and background together (shared) or parts and objects+bg apart (separate)."""
        if self.layers_object is None:
            for layer in self.layers:
                x = layer(x, appearance, text_guidance, pool, chunk)
            return x
        parts, objects = x[:, :, :num_parts], x[:, :, num_parts:]
        tg_parts = None if text_guidance is None else text_guidance[:, :num_parts]
        tg_objects = None if text_guidance is None else text_guidance[:, num_parts:]
        for layer, layer_object in zip(self.layers, self.layers_object, strict=True):
            parts = layer(parts, appearance, tg_parts, pool, chunk)
            objects = layer_object(objects, appearance, tg_objects, pool, chunk)
        return torch.cat([parts, objects], dim=2)

    # -- stage B -------------------------------------------------------------------------------------------

    def specific_features(
        self,
        x: Tensor,
        specific_to_part: Tensor,
        specific_to_object: Tensor,
        num_parts: int,
        chunk: int | None,
    ) -> Tensor:
        """(B, C, T1, h, w) stage-A embeddings -> (B, D, T_s + 1, h, w) object-specific features in text space.

        Class t takes [part(t) ; object(t)] embeddings; the background takes [bg ; bg]. A 1x1 convolution
        projects the 2C channels to CLIP's embedding width.
        """
        parts = x.index_select(2, specific_to_part)
        objects = x.index_select(2, num_parts + specific_to_object)
        feats = torch.cat([parts, objects], dim=1)
        bg = x[:, :, -1:]
        feats = torch.cat([feats, torch.cat([bg, bg], dim=1)], dim=2)

        def project(f: Tensor) -> Tensor:
            b, c, t, h, w = f.shape
            y = self.proj_feat(f.transpose(1, 2).reshape(b * t, c, h, w))
            return y.reshape(b, t, -1, h, w).transpose(1, 2)

        return map_classes(project, feats, chunk)

    def per_class_bytes(self, image: Tensor) -> int:
        """Rough fp32 activation bytes of one class: both stages run CAT-Seg's aggregator, one after the
        other, on a chunk of classes; stage B's projection of [part ; object] embeddings to text space runs
        on the same chunk in between, so the larger of the two bounds a chunk's activations."""
        cfg = self.config
        cells = image.shape[0] * image.shape[-2] * image.shape[-1]
        projection = 4 * cells * (2 * cfg.hidden_dim + cfg.text_dim)
        return max(super().per_class_bytes(image), projection)

    @staticmethod
    def classwise_cost(features: Tensor, text: Tensor) -> Tensor:
        """Cosine of each class's feature with its own text only: (B, D, T, h, w), (B, T, P, D) -> (B, P, T, h, w)."""
        return torch.einsum("bdthw,btpd->bpthw", F.normalize(features, dim=1), F.normalize(text, dim=-1))

    # -- forward -------------------------------------------------------------------------------------------

    def forward(  # type: ignore[override]
        self,
        image: Tensor,
        part_object_text: Tensor,
        specific_text: Tensor,
        guidance: Sequence[Tensor],
        specific_to_part: Tensor,
        specific_to_object: Tensor,
        class_chunk: int | None = None,
    ) -> dict[str, Tensor]:
        """Both stages.

        ``image`` (B, D, h, w) dense CLIP features; ``part_object_text`` (T1, P, D) or (B, T1, P, D) with the
        P_g generalized parts, then the O objects, then the background; ``specific_text`` (T_s + 1, P, D)
        with the background last; ``guidance`` DINO maps at 1x, 2x and 4x the grid; ``specific_to_part`` and
        ``specific_to_object`` (T_s,) index each object-specific part's generalized part and object.

        Returns ``part_object_logits`` (B, T1, 4h, 4w), ``specific_logits`` (B, T_s + 1, 4h, 4w), and the raw
        costs ``part_object_cost`` (B, P, T1, h, w) and ``specific_cost`` (B, P, T_s + 1, h, w).

        Both texts may come L2-normalised or not, and each stage uses its text as the official forward
        does: both cost volumes normalise every template, while the text guidance of each stage is the
        normalised mean over templates of the text as given (no top-k here: PartCATSeg has no ``pad_len``).
        """
        cfg = self.config
        chunk = cfg.class_chunk if class_chunk is None else class_chunk
        b = image.shape[0]
        if part_object_text.dim() == 3:
            part_object_text = part_object_text.unsqueeze(0).expand(b, -1, -1, -1)
        if specific_text.dim() == 3:
            specific_text = specific_text.unsqueeze(0).expand(b, -1, -1, -1)
        for name, t in (("part/object", part_object_text), ("object-specific", specific_text)):
            if t.shape[2] != cfg.prompts or t.shape[-1] != image.shape[1]:
                raise ConfigError(
                    f"The {name} text embeddings must be (B, T, {cfg.prompts}, {image.shape[1]}), "
                    f"got {tuple(t.shape)}."
                )
        num_specific = specific_to_part.shape[0]
        if specific_text.shape[1] != num_specific + 1:
            raise ConfigError(
                f"{num_specific} object-specific parts need {num_specific + 1} text rows (background last), "
                f"got {specific_text.shape[1]}."
            )
        num_objects = int(specific_to_object.max().item()) + 1 if num_specific else 0
        num_parts = part_object_text.shape[1] - 1 - num_objects
        pool = cfg.pooling_train if self.training else cfg.pooling_eval
        with stage("guidance projection"):
            appearance, decoder_guidance = self.project_guidance(guidance, tuple(image.shape[-2:]))
            tg_a, tg_b = self.text_guidance(part_object_text), self.text_guidance(specific_text)

        # Stage A: generalized parts + objects + background.
        with stage("cost volume"):
            cost_a = cosine_cost(image, part_object_text)
            x = self.cost_embed(cost_a, chunk)
        x = self.aggregate_stage_a(x, appearance, tg_a, num_parts, pool, chunk)
        with stage("decoder"):
            logits_a = self.decode(x, decoder_guidance, chunk)

        # Stage B: object-specific parts from part and object embeddings, re-correlated with their own text.
        with stage("cost volume"):
            feats = self.specific_features(x, specific_to_part, specific_to_object, num_parts, chunk)
            cost_b = self.classwise_cost(feats, specific_text)
            y = self.cost_embed_specific(cost_b, chunk)
        for layer in self.layers_specific:
            y = layer(y, appearance, tg_b, pool, chunk)
        with stage("decoder"):
            logits_b = self.decode(y, decoder_guidance, chunk)
        return {
            "part_object_logits": logits_a,
            "specific_logits": logits_b,
            "part_object_cost": cost_a,
            "specific_cost": cost_b,
        }


@dataclass(frozen=True)
class VocabularyIndex:
    """The class lists and index maps PartCATSeg needs for a vocabulary (built once per vocabulary)."""

    generalized: tuple[str, ...]
    objects: tuple[str, ...]
    specific_to_part: Tensor
    specific_to_object: Tensor
    object_to_part_object: Tensor

    @classmethod
    def of(cls, vocab: Vocabulary, device: torch.device) -> VocabularyIndex:
        return cls(
            vocab.generalized_parts,
            vocab.part_objects,
            torch.as_tensor(vocab.part_to_generalized, device=device),
            torch.as_tensor(vocab.part_to_part_object, device=device),
            torch.as_tensor(vocab.object_to_part_object, device=device),
        )


def _architecture(config: Any) -> dict[str, Any]:
    """A transformers config as the plain dict our config.json stores (bookkeeping keys dropped)."""
    drop = {"architectures", "transformers_version", "_name_or_path", "model_type", "torch_dtype", "dtype"}
    return {k: v for k, v in config.to_diff_dict().items() if k not in drop and not k.startswith("_")}


class PartCatSeg(ClipTextModel):
    """PartCATSeg on ovparts' CAT-Seg: frozen CLIP, DINO guidance, two-stage object-aware aggregation."""

    name = "partcatseg"
    config_class = PartCatSegConfig
    checkpoint_build_options = {"load_dino": False}  # the checkpoint holds DINO's weights
    independent_classes = False  # CAT-Seg's class attention over parts and objects (docs/partcatseg.md)

    def __init__(
        self, config: PartCatSegConfig, tokenizer_folder: str | Path | None = None, load_dino: bool = True
    ) -> None:
        super().__init__(config)
        self.backbone = clip_backbone(config, tokenizer_folder, "PartCATSeg")
        apply_finetune(self.backbone.clip, "none")  # CLIP is frozen in PartCATSeg
        weights = config.dino_weights if load_dino else None
        encoder = build_dino(config.dino_kind, config.dino_config, weights)
        if weights is not None:  # the checkpoint's config must describe the DINO it now holds
            config.dino_config = as_json(_architecture(encoder.config))
        self.dino = DinoGuidance(
            encoder,
            image_size=config.dino_image_size,
            hub_interpolation=bool(config.switch("dino_hub_interpolation")),
            lr_multiplier=config.dino_lr_multiplier,
        )
        self.head = PartCatSegAggregator(config.head_config, config.switch("object_layers"))
        if config.faithful:
            self.head.copy_stage_a_to_stage_b()  # official: copies of the random init, made before loading
        bg = torch.randn(config.projection_dim) * config.text_config.get("hidden_size", 512) ** -0.5
        if config.switch("background") == "learned":
            self.background_embedding = nn.Parameter(bg)
        else:
            self.register_buffer("background_embedding", bg)
        self._index_cache: dict[tuple, VocabularyIndex] = {}

    # ------------------------------------------------------------------ training scope
    @property
    def lr_multipliers(self) -> dict[str, float]:
        """Parameter-name prefix -> learning-rate factor (DINO at 0.01 in the recipe); CLIP is frozen."""
        return {"dino.": self.dino.lr_multiplier}

    def parameter_groups(self, lr: float, weight_decay: float = 1e-4) -> list[dict]:
        """AdamW groups as the official recipe: DINO at ``lr * multiplier``, norms without weight decay."""
        norm_types = (nn.LayerNorm, nn.GroupNorm)
        norm_ids = {id(p) for m in self.modules() if isinstance(m, norm_types) for p in m.parameters()}
        groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            factor = next((f for prefix, f in self.lr_multipliers.items() if name.startswith(prefix)), 1.0)
            groups.setdefault((factor, id(p) in norm_ids), []).append(p)
        return [
            {"params": params, "lr": lr * factor, "weight_decay": 0.0 if is_norm else weight_decay}
            for (factor, is_norm), params in groups.items()
        ]

    @torch.no_grad()
    def init_from_catseg(self, catseg: nn.Module) -> list[str]:
        """Start training from a CAT-Seg model (the recipe's old CAT-Seg (B)): CLIP and the shape-compatible
        aggregator weights go into stage A. By default stage B and the object stack are then copied from the
        *loaded* stage A; ``faithful`` keeps the official order, whose copies were made from random weights.
        Returns the head keys that were loaded.
        """
        self.backbone.clip.load_state_dict(catseg.backbone.clip.state_dict())
        own = self.head.state_dict()
        loaded = {
            k: v
            for k, v in catseg.head.state_dict().items()
            if k in own and tuple(v.shape) == tuple(own[k].shape)
        }
        self.head.load_state_dict(loaded, strict=False)
        if not self.config.faithful:
            self.head.copy_stage_a_to_stage_b()
        return sorted(loaded)

    # ------------------------------------------------------------------ encoders
    @property
    def preprocess(self) -> Preprocess:
        return detectron2_test_chain(self.config)

    @property
    def segmenter_defaults(self) -> SegmenterDefaults:
        return SegmenterDefaults(sliding_window=self.config.sliding_window)

    def compile_targets(self) -> list[nn.Module]:
        """CLIP's dense image path, the DINO guidance encoder and the two-stage aggregator."""
        return [self.backbone, self.dino, self.head]

    def vocabulary_index(self, vocab: Vocabulary) -> VocabularyIndex:
        key = (vocab, self.device)
        if key not in self._index_cache:
            self._index_cache = {key: VocabularyIndex.of(vocab, self.device)}
        return self._index_cache[key]

    def background_text(self) -> Tensor:
        """(P, D) the normalised background embedding, the same for every template."""
        bg = F.normalize(self.background_embedding, dim=-1)
        return bg.expand(len(self.config.template_list), -1)

    def text_embeddings(self, vocab: Vocabulary) -> tuple[Tensor, Tensor]:
        """(P_g + O + 1, P, D) part/object text and (T_s + 1, P, D) object-specific text, background last.

        CLIP is frozen, so the encoder's text cache serves every image after the first.
        """
        index = self.vocabulary_index(vocab)
        templates = self.config.template_list
        precision = self.config.text_precision
        part_obj = self.backbone.encode_text(
            list(index.generalized) + list(index.objects), templates, normalize=True, precision=precision
        )
        specific = self.backbone.encode_text(
            vocab.part_texts(self.config.text_style), templates, normalize=True, precision=precision
        )
        bg = self.background_text().unsqueeze(0).to(part_obj.dtype)
        return torch.cat([part_obj, bg]), torch.cat([specific, bg])

    def image_features(self, pixel_values: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Dense CLIP features (B, D, h, w) and the DINO guidance maps at 1x, 2x and 4x the grid.

        ``pixel_values`` (CLIP-normalised) of any size: as in the official forward, the CLIP copy and the
        ImageNet-normalised DINO copy are each zero-padded to ``size_divisibility``, then interpolated to
        ``image_size`` and ``dino_image_size`` (both from the padded image, not one from the other).
        """
        cfg = self.config
        side = (cfg.image_size, cfg.image_size)
        clip_input = encoder_input(pixel_values, side, cfg.size_divisibility)
        (dense,) = self.backbone(clip_input, dense_residual=cfg.switch("dense_residual"))
        image = renormalize(pixel_values, cfg.pixel_mean, cfg.pixel_std, cfg.dino_mean, cfg.dino_std)
        # interpolated here, not inside DinoGuidance, so a compiled DINO always sees one input size
        image = encoder_input(image, (self.dino.image_size, self.dino.image_size), cfg.size_divisibility)
        h, w = dense.shape[-2:]
        return dense, self.dino(image, [(h, w), (2 * h, 2 * w), (4 * h, 4 * w)])

    # ------------------------------------------------------------------ forward
    def forward(
        self, pixel_values: Tensor, vocab: Vocabulary, class_chunk: int | str | None = None
    ) -> dict[str, Tensor]:
        """The head's outputs (both stages' logits and costs) for a vocabulary."""
        index = self.vocabulary_index(vocab)
        part_obj_text, specific_text = self.text_embeddings(vocab)
        with stage("image encoder"):
            dense, guidance = self.image_features(pixel_values)
        chunk = self.config.class_chunk if class_chunk is None else class_chunk
        if chunk == "auto":  # one chunk for both stages, capped by the larger class list
            classes = max(part_obj_text.shape[0], specific_text.shape[0])
            chunk = resolve_class_chunk(chunk, classes, self.per_class_bytes(dense), dense.device)
        return self.head(
            dense,
            part_obj_text,
            specific_text,
            guidance,
            index.specific_to_part,
            index.specific_to_object,
            class_chunk=chunk,
        )

    def per_class_bytes(self, dense: Tensor) -> int:
        """Rough fp32 activation bytes of one class in the head (see
        :meth:`PartCatSegAggregator.per_class_bytes`)."""
        return self.head.per_class_bytes(dense)

    def predict(self, pixel_values: Tensor, vocab: Vocabulary) -> PartLogits:
        out = self(pixel_values, vocab)
        index = self.vocabulary_index(vocab)
        num_parts, num_objects = len(index.generalized), len(index.objects)
        logits_a, logits_b = out["part_object_logits"], out["specific_logits"]
        part_objects = logits_a[:, num_parts : num_parts + num_objects]
        # objects follow vocab.objects; objects without parts are never predicted
        objects = logits_a.new_full(
            (logits_a.shape[0], len(vocab.objects), *logits_a.shape[2:]), ABSENT_OBJECT_LOGIT
        )
        has_parts = index.object_to_part_object >= 0
        objects[:, has_parts] = part_objects[:, index.object_to_part_object[has_parts]]
        object_background = logits_a[:, -1:]
        extras = {
            "generalized_parts": logits_a[:, :num_parts],
            "part_objects": part_objects,
            "object_background": object_background,
            "objects": objects,
        }
        gate = self.config.pred_all == "objects"
        result = PartLogits(
            parts=logits_b[:, :-1],
            background=logits_b[:, -1:],
            objects=objects if gate else None,
            activation="sigmoid",
            extras=extras,
        )
        if gate and "object_background" in {f.name for f in dataclasses.fields(PartLogits)}:
            result.object_background = object_background
        return result

    # ------------------------------------------------------------------ contract
    def encode_image(self, pixel_values: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Dense CLIP features and the DINO guidance maps (:meth:`image_features`)."""
        return self.image_features(pixel_values)

    def encode_vocabulary(self, vocab: Vocabulary) -> tuple[Tensor, Tensor]:
        """Both text sets of ``vocab`` (:meth:`text_embeddings`; cached by the backbone)."""
        return self.text_embeddings(vocab)

    def training_loss(
        self, batch: dict[str, Tensor], vocab: Vocabulary, ignore_index: int
    ) -> dict[str, Tensor]:
        """PartCATSeg (official: part-catseg ``baselines/partcatseg.py``): every term of :meth:`loss` and
        their sum, with part and object labels as PartCLIPSeg."""
        return self.loss(
            batch["pixel_values"], vocab, batch["part_labels"], batch["object_labels"], ignore_index
        )

    # ------------------------------------------------------------------ training
    def loss(
        self,
        pixel_values: Tensor,
        vocab: Vocabulary,
        part_labels: Tensor,
        object_labels: Tensor,
        ignore_index: int = 255,
    ) -> dict[str, Tensor]:
        """Every training term and their sum under ``"total"`` (all lambdas 1, as the official code).

        ``part_labels`` (B, H, W) index ``vocab.parts``; ``object_labels`` (B, H, W) index ``vocab.objects``;
        both ``ignore_index`` where unlabelled. Logits are resized to the label size; the compositional term
        works on the raw costs at the feature grid.
        """
        out = self(pixel_values, vocab)
        index = self.vocabulary_index(vocab)
        size = tuple(part_labels.shape[-2:])
        num_parts = len(index.generalized)
        ign = torch.full_like(part_labels, ignore_index)
        valid_part = (part_labels != ignore_index) & (part_labels >= 0) & (part_labels < len(vocab))
        specific = torch.where(valid_part, part_labels, ign)
        generalized = torch.where(valid_part, index.specific_to_part[specific.clamp(0, len(vocab) - 1)], ign)
        valid_obj = (
            (object_labels != ignore_index) & (object_labels >= 0) & (object_labels < len(vocab.objects))
        )
        mapped = index.object_to_part_object[object_labels.clamp(0, len(vocab.objects) - 1)]
        objects = torch.where(valid_obj & (mapped >= 0), mapped, ign)
        logits_a = resize_logits(out["part_object_logits"].float(), size)
        logits_b = resize_logits(out["specific_logits"].float(), size)
        weight = self.config.background_weight
        terms = {
            "specific": partcatseg_specific_loss(
                logits_b, specific, objects, ignore_index, weight, faithful=self.config.faithful
            ),
            "part": partcatseg_part_loss(logits_a[:, :num_parts], generalized, ignore_index),
            "object": partcatseg_object_loss(logits_a[:, num_parts:], objects, ignore_index, weight),
            "compositional": compositional_loss(
                out["part_object_cost"][:, :, num_parts:].float(),
                out["specific_cost"].float(),
                index.specific_to_object,
            ),
        }
        terms["total"] = sum(terms.values())
        return terms

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def _build_on_meta(cls, config: PartCatSegConfig, folder: Path | None) -> PartCatSeg:
        """The meta-device probe never downloads DINO weights (``dino_weights``)."""
        if folder is not None:
            return cls._build_for_checkpoint(config, folder)
        return cls(config, load_dino=False)


__all__ = [
    "CONFIGS",
    "PartCatSeg",
    "PartCatSegAggregator",
    "PartCatSegConfig",
    "SWITCHES",
    "VocabularyIndex",
]
