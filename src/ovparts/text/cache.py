"""A bounded cache of text embeddings: a long-running server sees new vocabularies all day, and keeping
every one it ever encoded would grow without end. Entries are dropped least-recently-used first once
their tensors pass a byte budget.

The budget is ``OVPARTS_TEXT_CACHE_MB`` (default 256 MiB, per model), read when a model is built, or
``ovparts serve --text-cache-mb``; 0 keeps nothing. A single vocabulary larger than the budget is
returned but not kept.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable

import torch

from ..errors import ConfigError

ENV_VAR = "OVPARTS_TEXT_CACHE_MB"
DEFAULT_MB = 256.0


def default_budget_bytes() -> int:
    """The byte budget from ``OVPARTS_TEXT_CACHE_MB``, or the default; a bad value is one sentence."""
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return int(DEFAULT_MB * 2**20)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{ENV_VAR} must be a number of megabytes (0 or more), got {text!r}.")
    return int(value * 2**20)


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class TextEmbeddingCache:
    """A mapping from a key to an embedding tensor, bounded by the tensors' total bytes (LRU eviction).

    Thread-safe: the web page and the API may encode vocabularies from different model threads. The byte
    total is recomputed from the entries rather than kept as a running sum, so an interrupted update (a
    timed-out request is stopped inside its thread) can never leave the count wrong.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = default_budget_bytes() if max_bytes is None else int(max_bytes)
        if self.max_bytes < 0:
            raise ConfigError(f"The text cache budget must be 0 or more bytes, got {self.max_bytes}.")
        self._entries: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> torch.Tensor | None:
        """The cached tensor (now the most recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: torch.Tensor) -> None:
        """Keep ``value`` unless it alone passes the budget; evict the least recently used to make room."""
        size = tensor_bytes(value)
        with self._lock:
            self._entries.pop(key, None)
            if size > self.max_bytes:
                return
            self._entries[key] = value
            while self._entries and self.nbytes > self.max_bytes:
                self._entries.popitem(last=False)

    def resize(self, max_bytes: int) -> None:
        """A new budget; entries past it are evicted at once, least recently used first."""
        if max_bytes < 0:
            raise ConfigError(f"The text cache budget must be 0 or more bytes, got {max_bytes}.")
        with self._lock:
            self.max_bytes = int(max_bytes)
            while self._entries and self.nbytes > self.max_bytes:
                self._entries.popitem(last=False)

    def retain(self, keep) -> None:  # noqa: ANN001 - a predicate on keys
        """Drop every entry whose key fails ``keep`` (e.g. embeddings of older text-encoder weights)."""
        with self._lock:
            for key in [k for k in self._entries if not keep(k)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached tensors now."""
        return sum(tensor_bytes(v) for v in list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries


def set_budget(model: torch.nn.Module, max_bytes: int) -> int:
    """Give every text-embedding cache inside ``model`` the budget ``max_bytes``; returns how many.

    Shrinking the budget evicts at once, least recently used first.
    """
    caches = text_caches(model)
    for cache in caches:
        cache.resize(max_bytes)
    return len(caches)


def text_caches(model: torch.nn.Module) -> list[TextEmbeddingCache]:
    """Every :class:`TextEmbeddingCache` held by ``model`` or its submodules, under whatever attribute name
    (a method's own text encoder needs no particular name for the server's budget to reach it)."""
    found: dict[int, TextEmbeddingCache] = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, TextEmbeddingCache):
                found[id(value)] = value
    return list(found.values())
