"""Embeddings: pooled, L2-normalised vectors for texts, from embedding or generative models.

The pooling comes from the model (``<arch>.pooling_type``) when it declares one; a
generative model that declares none is mean-pooled. Several texts share one batch, each
as its own sequence, so short texts cost one decode together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llamahost import _native
from llamahost.engine.options import ContextParams
from llamahost.engine.session import native_context_params
from llamahost.errors import ContextOverflowError, OptionError

POOLING_TYPES = {"none": 0, "mean": 1, "cls": 2, "last": 3, "rank": 4}
MAX_SEQUENCES_PER_BATCH = 16


def model_pooling_type(model: _native.Model) -> int | None:
    """The pooling the model declares in its GGUF metadata, if any."""
    arch = model.meta_value("general.architecture")
    value = model.meta_value(f"{arch}.pooling_type") if arch else None
    return int(value) if value not in (None, "") else None


class Embedder:
    """An embeddings context for one model. Use from one thread at a time."""

    def __init__(
        self,
        model: _native.Model,
        options: ContextParams,
        pooling: str | None = None,
        adapters: Sequence[_native.Adapter] = (),
    ) -> None:
        if pooling is not None and pooling not in POOLING_TYPES:
            raise OptionError(
                f"`pooling` must be one of {', '.join(POOLING_TYPES)}, got {pooling!r}",
                option="pooling",
            )
        declared = model_pooling_type(model)
        if pooling is not None:
            pooling_type = POOLING_TYPES[pooling]
        elif declared not in (None, 0):
            pooling_type = declared
        else:
            pooling_type = POOLING_TYPES["mean"]
        if pooling_type == 0:
            raise OptionError(
                "`pooling` none gives per-token vectors; choose mean, cls or last", option="pooling"
            )
        self._model = model
        self._pooling = pooling
        self._context_params = ContextParams.of(options)
        self._ctx = _native.Context(
            model,
            **native_context_params(
                model,
                options,
                embeddings=True,
                pooling_type=pooling_type,
                n_seq_max=MAX_SEQUENCES_PER_BATCH,
            ),
        )
        if adapters:
            self._ctx.set_adapters(list(adapters))
        self._encoder_only = model.has_encoder and not model.has_decoder

    def matches(self, options: ContextParams, pooling: str | None) -> bool:
        return self._context_params == ContextParams.of(options) and self._pooling == pooling

    @property
    def n_ctx(self) -> int:
        return int(self._ctx.n_ctx)

    def embed(
        self, texts: Sequence[str], *, normalize: bool = True, truncate: bool = True
    ) -> tuple[list[list[float]], int]:
        """Vectors for `texts` (in order) and the number of tokens processed."""
        limit = self.n_ctx
        token_lists: list[list[int]] = []
        for i, text in enumerate(texts):
            tokens = self._model.vocab.tokenize(text, True, False)
            if not tokens:
                tokens = [self._model.vocab.bos if self._model.vocab.bos >= 0 else 0]
            if len(tokens) > limit:
                if not truncate:
                    raise ContextOverflowError(
                        f"input {i} has {len(tokens)} tokens but the embedding context holds "
                        f"{limit}; raise num_ctx or allow truncation",
                        n_prompt=len(tokens),
                        n_ctx=limit,
                    )
                tokens = tokens[:limit]
            token_lists.append(tokens)

        vectors: list[list[float]] = [[] for _ in texts]
        batch = _native.Batch(limit, 1)
        start = 0
        while start < len(token_lists):
            batch.clear()
            members: list[int] = []
            used = 0
            while (
                start + len(members) < len(token_lists)
                and len(members) < MAX_SEQUENCES_PER_BATCH
                and used + len(token_lists[start + len(members)]) <= limit
            ):
                index = start + len(members)
                batch.add_sequence(token_lists[index], 0, len(members), True, True)
                used += len(token_lists[index])
                members.append(index)
            self._ctx.memory_clear(True)
            if self._encoder_only:
                self._ctx.encode(batch)
            else:
                self._ctx.decode(batch)
            for seq, index in enumerate(members):
                vec = np.array(self._ctx.sequence_embeddings(seq), dtype=np.float32)
                if normalize:
                    norm = float(np.linalg.norm(vec))
                    if norm > 0:
                        vec = vec / norm
                vectors[index] = vec.tolist()
            start += len(members)
        self._ctx.memory_clear(True)
        return vectors, sum(len(t) for t in token_lists)
