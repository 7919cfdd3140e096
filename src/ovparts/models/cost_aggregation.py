"""Building blocks of CAT-Seg's cost aggregation (Cho et al., CVPR 2024), shared with PartCATSeg.

Everything here works on a *cost volume*: one feature map per class, shaped ``(B, C, T, H, W)`` with T the
number of classes. Blocks that act on each class alone (cost embedding, spatial Swin aggregation, the
upsampling decoder) take a ``class_chunk`` so that memory grows with the chunk, not with the vocabulary; the
only block that mixes classes (class aggregation) is linear in T and runs on all classes at once. Chunking
therefore never changes results.

Module and tensor layouts follow the official ``cat_seg/modeling/transformer/model.py`` (docs/catseg.md); parameter names
are ours, the converter in :mod:`ovparts.methods.catseg.convert` maps the official names onto them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..runtime.fused_linear import fused_linear
from .chunking import CHUNK_LOOP_REASON, map_slices

# The official Swin mask uses -100 rather than -inf: after softmax the masked weights are ~e-44, not 0.
SWIN_MASK_VALUE = -100.0


@torch.compiler.disable(recursive=False, reason=CHUNK_LOOP_REASON)
def map_classes(
    fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int | None, dim: int = 2, out_dim: int | None = None
) -> Tensor:
    """Apply a per-class function on slices of the class axis ``dim``; results joined along ``out_dim``.

    ``out_dim`` defaults to ``dim``. Under ``torch.compile`` each slice is a graph of its own (:func:`map_slices`).
    """
    return map_slices(fn, [x], chunk, dim, out_dim)


def cosine_cost(image: Tensor, text: Tensor) -> Tensor:
    """Cosine similarity of every pixel with every class prompt.

    ``image`` (B, C, H, W) dense CLIP features, ``text`` (B, T, P, C) class embeddings with P prompt
    templates; returns (B, P, T, H, W). Both sides are L2-normalised here so callers may pass raw features.
    """
    return torch.einsum("bchw,btpc->bpthw", F.normalize(image, dim=1), F.normalize(text, dim=-1))


class CostEmbedding(nn.Module):
    """7x7 convolution lifting the P cost channels of each class to the hidden width.

    Applied to every class separately (classes are folded into the batch), so it never mixes classes.
    """

    def __init__(self, prompts: int, hidden_dim: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(prompts, hidden_dim, kernel_size, padding=kernel_size // 2)

    def forward(self, cost: Tensor, class_chunk: int | None = None) -> Tensor:
        """(B, P, T, H, W) -> (B, hidden, T, H, W)."""

        def embed(c: Tensor) -> Tensor:
            b, p, t, h, w = c.shape
            y = self.conv(c.transpose(1, 2).reshape(b * t, p, h, w))
            return y.reshape(b, t, -1, h, w).transpose(1, 2)

        return map_classes(embed, cost, class_chunk)


# ---------------------------------------------------------------------------------------------------------
# Spatial aggregation: Swin window attention per class, appearance guidance in queries and keys.


def window_partition(x: Tensor, window: int) -> Tensor:
    """(N, H, W, C) -> (N * windows, window * window, C), windows in row-major order."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_merge(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: (N * windows, window * window, C) -> (N, H, W, C)."""
    c = windows.shape[-1]
    x = windows.reshape(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shifted_window_mask(
    h: int, w: int, window: int, shift: int, device: torch.device | None = None
) -> Tensor:
    """Additive attention mask (windows, N, N) that stops shifted windows attending across the wrap-around.

    Tokens that came from different regions of the cyclically shifted map get ``SWIN_MASK_VALUE``; the
    official checkpoint stores the same mask as a buffer for the 24x24 grid, we build it for any grid.
    """
    region = torch.zeros(1, h, w, 1, device=device)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bands:
        for cols in bands:
            region[:, rows, cols, :] = label
            label += 1
    ids = window_partition(region, window).squeeze(-1)  # (windows, N)
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, SWIN_MASK_VALUE)


def guided_linear(linear: nn.Linear, x: Tensor, guidance: Tensor | None) -> Tensor:
    """``linear`` applied to ``[x ; guidance]`` without building the concatenation.

    The weight splits into an ``x`` part and a guidance part; the guidance part (with the bias) is applied
    to ``guidance`` as given, so guidance shared by many rows (one text guidance per class for every pixel,
    one appearance guidance per pixel for every class) is projected once and broadcast in the sum.
    """
    dim = x.shape[-1]
    if guidance is None:
        return linear(x)
    y = F.linear(x, linear.weight[:, :dim])
    shared = F.linear(guidance, linear.weight[:, dim:], linear.bias)
    if torch.broadcast_shapes(y.shape, shared.shape) == y.shape:
        return y.add_(shared)  # y is this function's own fresh output: no second full-size tensor
    return y + shared


class GuidedWindowAttention(nn.Module):
    """Multi-head window self-attention whose queries and keys also see appearance guidance.

    Values come from the cost features only, so the guidance steers *where* to aggregate without being
    copied into the cost. No relative position bias (the official block has none).
    """

    def __init__(self, dim: int, guidance_dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"The hidden width {dim} must be divisible by the {heads} attention heads.")
        self.dim, self.heads = dim, heads
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: Tensor,
        windows_per_item: int,
        mask: Tensor | None = None,
        guidance: Tensor | None = None,
        residual: Tensor | None = None,
    ) -> Tensor:
        """``x`` (N * windows, L, dim) -> (N * windows, L, dim); ``mask`` (windows, L, L); plus ``residual``
        (x's shape) when given, added inside the output projection.

        The guidance comes either concatenated to ``x`` (``x`` then has dim + guidance_dim channels) or as
        ``guidance`` (M * windows, L, guidance_dim) for M items that each of the N // M groups of ``x`` share
        (one appearance map for every class of an image): then it is projected once per item and broadcast,
        instead of once per class.
        """
        nw, length, _ = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.reshape(nw, length, self.heads, -1).transpose(1, 2)

        if guidance is None:
            q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x[..., : self.dim]))
        else:
            items = guidance.shape[0] // windows_per_item
            grouped = x.reshape(items, -1, windows_per_item, length, self.dim)
            shared = guidance.reshape(items, 1, windows_per_item, length, -1)
            q = heads(guided_linear(self.q, grouped, shared))
            k = heads(guided_linear(self.k, grouped, shared))
            v = heads(self.v(x))
        attn_mask = None
        if mask is not None:
            # (windows, L, L) -> (N * windows, 1, L, L) without copying per item
            n = nw // windows_per_item
            attn_mask = (
                mask.unsqueeze(1).unsqueeze(0).expand(n, -1, -1, -1, -1).reshape(nw, 1, length, length)
            )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return fused_linear(self.proj, out.transpose(1, 2).reshape(nw, length, self.dim), residual=residual)


class Mlp(nn.Module):
    """Two-layer perceptron (fc1, activation, fc2), optionally plus a residual.

    The activation and the residual add are fused into fc1's and fc2's matrix products where
    ``ovparts.runtime.fused_linear`` can (CPU inference): one pass over the wide hidden layer, not three.
    """

    def __init__(self, dim: int, hidden: int, activation: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = activation()
        self.fc2 = nn.Linear(hidden, dim)

    @property
    def fused_activation(self) -> str | None:
        """``self.act`` as :func:`fused_linear` names it, or None where it has no fused form."""
        if isinstance(self.act, nn.GELU) and self.act.approximate == "none":
            return "gelu"
        return "relu" if isinstance(self.act, nn.ReLU) else None

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """``fc2(act(fc1(x)))``, plus ``residual`` when given (same shape as the output)."""
        activation = self.fused_activation
        hidden = self.act(self.fc1(x)) if activation is None else fused_linear(self.fc1, x, activation)
        return fused_linear(self.fc2, hidden, residual=residual)


class GuidedSwinBlock(nn.Module):
    """Pre-norm Swin block: (shifted) window attention with guidance, then an MLP; both residual."""

    def __init__(self, dim: int, guidance_dim: int, heads: int, window: int, shift: int, mlp_ratio: int = 4):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GuidedWindowAttention(dim, guidance_dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self._mask_cache: dict[tuple, Tensor] = {}

    def geometry(self, h: int, w: int) -> tuple[int, int]:
        """Window and shift for this grid: a grid no larger than the window is one window, unshifted."""
        if min(h, w) <= self.window:
            return min(h, w), 0
        if h % self.window or w % self.window:
            raise ConfigError(
                f"The cost grid {h}x{w} is not a multiple of the Swin window {self.window}; "
                "use an input size whose feature grid the window divides (e.g. 384 px for ViT-B/16)."
            )
        return self.window, self.shift

    def _mask(self, h: int, w: int, window: int, shift: int, device: torch.device) -> Tensor:
        key = (h, w, window, shift, device)
        if key not in self._mask_cache:
            self._mask_cache[key] = shifted_window_mask(h, w, window, shift, device)
        return self._mask_cache[key]

    def order(self, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor] | None:
        """Token order of this block's (shifted) windows on an h x w grid, and its inverse; None if identity.

        ``x.index_select(1, order)`` is what the cyclic shift followed by the window partition gives, in one
        gather instead of two copies; ``index_select(1, inverse)`` undoes it (merge, then shift back).
        """
        window, shift = self.geometry(h, w)
        if window == h and window == w and not shift:
            return None
        key = ("order", h, w, window, shift, device)
        if key not in self._mask_cache:
            grid = torch.arange(h * w, device=device, dtype=torch.float32).reshape(1, h, w, 1)
            if shift:
                grid = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
            order = window_partition(grid, window).reshape(-1).long()
            self._mask_cache[key] = (order, torch.argsort(order))
        return self._mask_cache[key]

    def forward_windowed(self, x: Tensor, guidance: Tensor | None, h: int, w: int) -> Tensor:
        """The block on tokens already in its window order (:meth:`order`): (N, H*W, dim) -> same order.

        Layer norm, MLP and residuals act on each token alone, so the whole block can stay in window order;
        only the attention needs the windows, which are then plain reshapes. ``guidance`` (M, H*W, G), M
        dividing N, must be in the same order.
        """
        n, length, c = x.shape
        window, shift = self.geometry(h, w)
        per_item = (h // window) * (w // window)
        area = window * window
        mask = self._mask(h, w, window, shift, x.device).to(x.dtype) if shift else None
        g = None if guidance is None else guidance.reshape(-1, area, guidance.shape[-1])
        windows = (n * per_item, area, c)
        x = self.attn(self.norm1(x).reshape(windows), per_item, mask, g, residual=x.reshape(windows))
        x = x.reshape(n, length, c)
        return self.mlp(self.norm2(x), residual=x)

    def forward(self, x: Tensor, guidance: Tensor | None, h: int, w: int) -> Tensor:
        """``x`` (N, H*W, dim), ``guidance`` (M, H*W, guidance_dim) or None -> (N, H*W, dim).

        M divides N: each guidance map serves N // M consecutive rows of ``x`` (M = N: one map per row; M = B
        with the classes of each image in a row: one appearance map per image, projected once)."""
        order = self.order(h, w, x.device)
        if order is None:
            return self.forward_windowed(x, guidance, h, w)
        forward, inverse = order
        g = None if guidance is None else guidance.index_select(1, forward)
        return self.forward_windowed(x.index_select(1, forward), g, h, w).index_select(1, inverse)


class SpatialAggregation(nn.Module):
    """Two Swin blocks (plain, then shifted by half a window) applied to each class's cost map.

    The appearance guidance (B, G, H, W) is layer-normalised once and shared by every class.
    """

    def __init__(self, dim: int, guidance_dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.block1 = GuidedSwinBlock(dim, guidance_dim, heads, window, 0)
        self.block2 = GuidedSwinBlock(dim, guidance_dim, heads, window, window // 2)
        self.guidance_norm = nn.LayerNorm(guidance_dim) if guidance_dim > 0 else None

    def forward(self, x: Tensor, guidance: Tensor | None, class_chunk: int | None = None) -> Tensor:
        """``x`` (B, C, T, H, W), ``guidance`` (B, G, H, W) or None -> (B, C, T, H, W)."""
        b, c, t, h, w = x.shape
        g = None
        if guidance is not None and self.guidance_norm is not None:
            g = self.guidance_norm(guidance.flatten(2).transpose(1, 2))  # (B, HW, G)

        # Both blocks run in their own window order (per-token ops commute with reordering), so the tokens
        # are gathered three times (in, between the blocks, out) instead of rolled, partitioned, merged and
        # rolled back in each block.
        identity = torch.arange(h * w, device=x.device)
        first = self.block1.order(h, w, x.device) or (identity, identity)
        second = self.block2.order(h, w, x.device) or (identity, identity)
        between = first[1].index_select(0, second[0])  # block1's order -> block2's order
        g1 = None if g is None else g.index_select(1, first[0])
        g2 = None if g is None else g.index_select(1, second[0])

        def run(chunk: Tensor) -> Tensor:
            tc = chunk.shape[2]
            # (B, C, T, H, W) -> (B*T, HW, C) in block1's window order: one gather from the strided view
            y = chunk.permute(0, 2, 3, 4, 1).reshape(b * tc, h * w, c).index_select(1, first[0])
            # g stays one map per image: the blocks project it once and broadcast it over the classes
            y = self.block1.forward_windowed(y, g1, h, w).index_select(1, between)
            y = self.block2.forward_windowed(y, g2, h, w).index_select(1, second[1])
            return y.reshape(b, tc, h, w, c).permute(0, 4, 1, 2, 3)

        return map_classes(run, x, class_chunk)


# ---------------------------------------------------------------------------------------------------------
# Class aggregation: attention across classes (linear, or PartCATSeg's "query"), text guidance in Q and K.


def linear_attention(
    q: Tensor, k: Tensor, v: Tensor, eps: float = 1e-6, pad: tuple[Tensor, Tensor, int] | None = None
) -> Tensor:
    """Kernelised attention of "Transformers are RNNs" (Katharopoulos et al., 2020) with phi = elu + 1.

    ``q`` (N, L, H, D), ``k`` and ``v`` (N, S, H, D) -> (N, L, H, D). Cost is linear in L and S and there is
    no position term, so permuting the S (class) axis of k and v permutes nothing in the output, and
    permuting q's L axis permutes the output the same way. V is scaled by 1/S and back, as the official
    code does, to keep the key-value sums in fp16 range.

    ``pad`` = (key (H, D), value (H, D), count): ``count`` more keys, all equal and the same for every row n
    (CAT-Seg's padding classes). Their share of the key-value sums is one outer product added ``count``
    times, so they cost nothing per row; the result is what appending them to ``k`` and ``v`` gives.
    """
    q, k = F.elu(q) + 1, F.elu(k) + 1
    s = v.shape[1]
    if pad is not None:
        pad_k, pad_v, count = pad
        pad_k = F.elu(pad_k) + 1
        s += count
    kv = torch.einsum("nshd,nshv->nhdv", k, v / s)
    k_sum = k.sum(dim=1)
    if pad is not None:
        kv = kv + torch.einsum("hd,hv->hdv", pad_k, pad_v * (count / s))
        k_sum = k_sum + count * pad_k
    norm = 1.0 / (torch.einsum("nlhd,nhd->nlh", q, k_sum) + eps)
    return torch.einsum("nlhd,nhdv,nlh->nlhv", q, kv, norm) * s


def query_attention(q: Tensor, k: Tensor, v: Tensor, eps: float = 1e-8) -> Tensor:
    """PartCATSeg's "query" attention: softmax over the *queries*, then renormalised over the keys.

    ``q`` (N, L, H, D), ``k`` and ``v`` (N, S, H, D) -> (N, L, H, D). Each key distributes one unit of
    attention over the queries (slot-attention style, so classes compete for pixels' evidence), ``eps`` is
    added, and each query's weights are rescaled to sum to one before averaging the values. Full O(L*S)
    attention, still free of position terms, so it is permutation-equivariant in the class order.
    """
    logits = torch.einsum("nlhd,nshd->nlsh", q, k) * q.shape[-1] ** -0.5
    weights = logits.softmax(dim=1) + eps
    weights = weights / weights.sum(dim=2, keepdim=True)
    return torch.einsum("nlsh,nshd->nlhd", weights, v)


CLASS_ATTENTIONS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "linear": linear_attention,
    "query": query_attention,
}


class ClassAttention(nn.Module):
    """Multi-head attention over the class axis; text guidance enters queries and keys only.

    ``kind`` is ``"linear"`` (CAT-Seg) or ``"query"`` (PartCATSeg's hard-coded override). There is no
    output projection in the official block, so there is none here.
    """

    def __init__(self, dim: int, guidance_dim: int, heads: int, kind: str = "linear") -> None:
        super().__init__()
        if kind not in CLASS_ATTENTIONS:
            raise ConfigError(
                f"Unknown class attention {kind!r}; use {' or '.join(map(repr, CLASS_ATTENTIONS))}."
            )
        self.heads = heads
        self.kind = kind
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)

    def pad_rows(
        self, token: Tensor, guidance: Tensor | None, count: int
    ) -> tuple[Tensor, Tensor, Tensor, int]:
        """Query, key and value (heads, head_dim) of ``count`` padding classes (``token`` (dim,), its
        ``guidance`` (G,) or None), computed once for every row; the ``pad`` argument of :meth:`forward`."""

        def rows(t: Tensor) -> Tensor:
            return t.reshape(self.heads, -1)

        q, k = guided_linear(self.q, token, guidance), guided_linear(self.k, token, guidance)
        return rows(q), rows(k), rows(self.v(token)), count

    def forward(
        self, x: Tensor, guidance: Tensor | None, pad: tuple[Tensor, Tensor, Tensor, int] | None = None
    ) -> Tensor:
        """``x`` (N, T, dim) with ``guidance`` (N, T, G), or ``x`` (B, n, T, dim) with ``guidance`` (B, T, G)
        shared by the n rows of each item; returns x's shape.

        ``pad`` (from :meth:`pad_rows`): padding classes appended to every row, the same everywhere. Linear
        attention takes them as shared keys and values (computed once, not per row); query attention
        normalises over the queries, so there the padded rows are appended.
        """
        t, c = x.shape[-2:]
        if x.dim() == 4 and guidance is not None and guidance.dim() == 3:
            guidance = guidance.unsqueeze(1)  # the same text guidance at every pixel row
        q = guided_linear(self.q, x, guidance).reshape(-1, t, self.heads, c // self.heads)
        k = guided_linear(self.k, x, guidance).reshape(-1, t, self.heads, c // self.heads)
        v = self.v(x).reshape(-1, t, self.heads, c // self.heads)
        if pad is None or pad[3] <= 0:
            out = CLASS_ATTENTIONS[self.kind](q, k, v)
        elif self.kind == "linear":
            out = linear_attention(q, k, v, pad=(pad[1], pad[2], pad[3]))
        else:
            count = pad[3]

            def extend(rows: Tensor, extra: Tensor) -> Tensor:
                return torch.cat([rows, extra.expand(rows.shape[0], count, -1, -1)], dim=1)

            out = CLASS_ATTENTIONS[self.kind](extend(q, pad[0]), extend(k, pad[1]), extend(v, pad[2]))
            out = out[:, :t]
        return out.reshape(x.shape)


def pool_classes(x: Tensor, pool: tuple[int, int]) -> Tensor:
    """(B, C, T, H, W) -> (B, C, T, H / ph, W / pw): each class's map average-pooled (the class attention
    runs on the coarser grid at inference, as the official ``pooling_size``)."""
    if tuple(pool) == (1, 1):
        return x
    b, c, t, h, w = x.shape
    pooled = F.avg_pool2d(x.transpose(1, 2).reshape(b * t, c, h, w), tuple(pool))
    return pooled.reshape(b, t, c, *pooled.shape[-2:]).transpose(1, 2)


def unpool_classes(y: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, T, C, h, w) -> (B, T, C, *size): back to the cost grid, bilinear with aligned corners."""
    b, t, c, hp, wp = y.shape
    if (hp, wp) == tuple(size):
        return y
    y = F.interpolate(y.reshape(b * t, c, hp, wp), size=size, mode="bilinear", align_corners=True)
    return y.reshape(b, t, c, *size)


class ClassAggregation(nn.Module):
    """One class-aggregation layer: pool, linear attention across classes + MLP, upsample, residual.

    ``pad_len`` > 0 appends learnable padding classes (one shared token and one shared text guidance) up to
    ``pad_len`` classes, so attention statistics see a fixed-length sequence as in the CVPR checkpoint.
    The padding classes are the same at every pixel and their outputs are dropped, so only their keys and
    values matter: they are computed once per layer, not once per pixel (:func:`linear_attention`).
    The layer returns ``x + up(pool(x) + delta)``, which is what the official code computes (the pooled
    input is kept in the branch), not the textbook ``x + up(delta)``.
    """

    def __init__(
        self,
        dim: int,
        guidance_dim: int,
        heads: int,
        pad_len: int = 0,
        mlp_ratio: int = 4,
        attention: str = "linear",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ClassAttention(dim, guidance_dim, heads, attention)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * mlp_ratio, activation=nn.ReLU)
        self.pad_len = pad_len
        self.pad_token = nn.Parameter(torch.zeros(dim)) if pad_len > 0 else None
        self.pad_guidance = (
            nn.Parameter(torch.zeros(guidance_dim)) if pad_len > 0 and guidance_dim > 0 else None
        )

    def forward(
        self,
        x: Tensor,
        guidance: Tensor | None,
        pool: tuple[int, int] = (1, 1),
        class_chunk: int | None = None,
    ) -> Tensor:
        """``x`` (B, C, T, H, W), ``guidance`` (B, T, G) or None -> (B, C, T, H, W).

        The layer mixes classes but never pixels, so with ``class_chunk`` it runs on slices of pixels holding
        about ``class_chunk`` classes' worth of tokens; the result is the same.
        """
        b, c, t, h, w = x.shape
        pooled = pool_classes(x, pool)
        hp, wp = pooled.shape[-2:]
        tokens = pooled.permute(0, 3, 4, 2, 1).reshape(b, hp * wp, t, c)  # (B, h*w, T, C)
        extra = self.pad_len - t if self.pad_token is not None else 0
        pad = None
        if extra > 0:
            pad_guidance = self.pad_guidance if guidance is not None else None
            norm = self.norm1  # functional: a module called on a bare Parameter upsets FlopCounterMode
            token = F.layer_norm(self.pad_token, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
            # a plain method, not a module call: the module hooks (FlopCounterMode's) never see Parameters
            pad = self.attn.pad_rows(token, pad_guidance, extra)

        def run(rows: Tensor) -> Tensor:
            rows = rows + self.attn(self.norm1(rows), guidance, pad)
            return self.mlp(self.norm2(rows), residual=rows)

        step = max(1, hp * wp * class_chunk // t) if class_chunk and 0 < class_chunk < t else 0
        tokens = map_slices(run, [tokens], step, dim=1)
        y = tokens.reshape(b, hp, wp, t, c).permute(0, 3, 4, 1, 2)  # (B, T, C, h, w)
        return x + unpool_classes(y, (h, w)).transpose(1, 2)


# ---------------------------------------------------------------------------------------------------------
# Upsampling decoder.


class GuidedUp(nn.Module):
    """x2 transposed convolution, concatenation of (projected) guidance, then two 3x3 conv + GroupNorm + ReLU.

    The transposed convolution outputs ``in - guidance`` channels so that the concatenation has ``in``.
    GroupNorm uses one group per 16 channels, as the official DoubleConv.
    """

    def __init__(self, in_dim: int, out_dim: int, guidance_dim: int) -> None:
        super().__init__()
        if out_dim % 16:
            raise ConfigError(
                f"Decoder width {out_dim} must be a multiple of 16 (GroupNorm uses 16 per group)."
            )
        self.up = nn.ConvTranspose2d(in_dim, in_dim - guidance_dim, kernel_size=2, stride=2)
        self.conv1 = nn.Conv2d(in_dim, out_dim, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(out_dim // 16, out_dim)
        self.conv2 = nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(out_dim // 16, out_dim)

    def forward(self, x: Tensor, guidance: Tensor | None = None) -> Tensor:
        """``x`` (N, in, H, W), ``guidance`` (M, G, 2H, 2W) or None -> (N, out, 2H, 2W).

        M divides N: each guidance map serves N // M consecutive rows of ``x`` (one map per image for all
        of its classes). The first convolution is linear in its input channels, so ``conv1([x ; g])`` is
        computed as ``conv1_x(x) + conv1_g(g)``: the guidance part once per map, broadcast over the classes,
        without copying the guidance to every class or concatenating it.
        """
        x = self.up(x)
        if guidance is None:
            y = self.conv1(x)
        else:
            split = x.shape[1]
            weight = self.conv1.weight
            y = F.conv2d(x, weight[:, :split], padding=self.conv1.padding)
            shared = F.conv2d(guidance, weight[:, split:], padding=self.conv1.padding)
            groups = guidance.shape[0]
            y.view(groups, -1, *y.shape[1:]).add_(shared.unsqueeze(1))
        x = torch.relu_(self.norm1(y))  # in place on the norm's fresh output: no second decoder-sized tensor
        return torch.relu_(self.norm2(self.conv2(x)))
