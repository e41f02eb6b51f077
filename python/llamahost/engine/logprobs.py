"""Log-probabilities of generated tokens, from the logits they were sampled from."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from llamahost import _native
from llamahost.engine.responses import TokenLogprob

#: Ollama and OpenAI allow at most 20 alternatives per token.
MAX_TOP_LOGPROBS = 20


def token_logprob(
    vocab: _native.Vocab, logits: npt.NDArray[np.float32], token: int, top: int
) -> TokenLogprob:
    """`token`'s log-probability under `logits` (log-softmax of the raw logits, as Ollama
    reports it), with the `top` most likely tokens of that step."""
    row = logits.astype(np.float64, copy=False)
    peak = float(row.max())
    log_total = peak + float(np.log(np.exp(row - peak).sum()))
    alternatives: list[TokenLogprob] = []
    if top > 0:
        top = min(top, row.shape[0])
        best = np.argpartition(-row, top - 1)[:top]
        best = best[np.argsort(-row[best], kind="stable")]
        alternatives = [_entry(vocab, int(t), float(row[t]) - log_total) for t in best]
    chosen = _entry(vocab, token, float(row[token]) - log_total)
    chosen.top_logprobs = alternatives
    return chosen


def _entry(vocab: _native.Vocab, token: int, logprob: float) -> TokenLogprob:
    piece = vocab.token_to_piece(token, True)
    return TokenLogprob(piece.decode("utf-8", errors="replace"), logprob, list(piece))
