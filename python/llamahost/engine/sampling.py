"""Request options -> a native sampler chain, in llama.cpp's usual order.

    logit_bias -> top_k -> penalties -> DRY -> top_n_sigma -> typical -> top_p -> min_p
    -> XTC -> temperature (dynamic if dynatemp_range > 0) -> dist(seed)

``temperature == 0`` selects the argmax after biases and penalties (greedy; with penalties
that only lower logits, a top-k of the penalty window + 1 goes first, which is exact and
spares a pass over the whole vocabulary); Mirostat
replaces the truncation samplers with its own selection. Penalties run after top_k
(when top_k > 0), as llama.cpp advises: they are slow over the whole vocabulary, and
with top_k they see only the k candidates.

A grammar (GBNF) is kept beside the chain and checked lazily, see ``_native.Sampler``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from llamahost import _native
from llamahost.engine.options import RequestOptions


def resolve_seed(seed: int) -> int:
    """A concrete seed: the given one, or a fresh random one for -1."""
    return random.SystemRandom().randrange(0, 2**32 - 1) if seed < 0 else seed


def build_sampler(
    model: _native.Model,
    options: RequestOptions,
    *,
    n_ctx: int,
    seed: int,
    grammar: str | None = None,
    lazy_grammar_triggers: Sequence[str] = (),
    logit_bias: Mapping[int, float] | None = None,
    history: Sequence[int] = (),
) -> _native.Sampler:
    """A sampler for one request.

    `history` (the prompt's tokens) is fed to the penalty and DRY samplers so that they
    also penalise repeating the prompt, within their look-back windows.
    """
    o = options
    s = _native.Sampler(model)
    if logit_bias:
        s.add_logit_bias(dict(logit_bias))

    penalty_last_n = n_ctx if o.repeat_last_n == -1 else o.repeat_last_n
    penalties_on = penalty_last_n > 0 and (
        o.repeat_penalty != 1.0 or o.frequency_penalty != 0.0 or o.presence_penalty != 0.0
    )
    greedy = o.temperature <= 0.0 and o.mirostat == 0

    if greedy and not penalties_on and o.dry_multiplier <= 0.0:
        s.add_greedy()
    else:
        if o.top_k > 0 and o.mirostat == 0 and not greedy:
            s.add_top_k(o.top_k)
        elif greedy and penalties_on and o.dry_multiplier <= 0.0 and _penalties_only_lower(o):
            # Exact shortcut: penalties lower at most `penalty_last_n` distinct tokens, so
            # the argmax after them is among the top penalty_last_n + 1 before them.
            s.add_top_k(penalty_last_n + 1)
        if penalties_on:
            s.add_penalties(
                penalty_last_n, o.repeat_penalty, o.frequency_penalty, o.presence_penalty
            )
        if o.dry_multiplier > 0.0:
            dry_last_n = n_ctx if o.dry_penalty_last_n == -1 else o.dry_penalty_last_n
            s.add_dry(
                o.dry_multiplier,
                o.dry_base,
                o.dry_allowed_length,
                dry_last_n,
                list(o.dry_sequence_breakers),
            )
        if greedy:
            s.add_greedy()
        elif o.mirostat == 1:
            s.add_temp(o.temperature)
            s.add_mirostat(seed, o.mirostat_tau, o.mirostat_eta)
        elif o.mirostat == 2:
            s.add_temp(o.temperature)
            s.add_mirostat_v2(seed, o.mirostat_tau, o.mirostat_eta)
        else:
            if o.top_n_sigma > 0:
                s.add_top_n_sigma(o.top_n_sigma)
            if o.typical_p < 1.0:
                s.add_typical(o.typical_p)
            if o.top_p < 1.0:
                s.add_top_p(o.top_p)
            if o.min_p > 0.0:
                s.add_min_p(o.min_p)
            if o.xtc_probability > 0.0:
                s.add_xtc(o.xtc_probability, o.xtc_threshold, 1, seed)
            if o.dynatemp_range > 0.0:
                s.add_temp_ext(o.temperature, o.dynatemp_range, o.dynatemp_exponent)
            else:
                s.add_temp(o.temperature)
            s.add_dist(seed)

    if history and (penalties_on or o.dry_multiplier > 0.0):
        window = max(penalty_last_n, 0)
        if o.dry_multiplier > 0.0:
            window = max(window, n_ctx if o.dry_penalty_last_n == -1 else o.dry_penalty_last_n)
        s.accept_history(list(history[-window:]) if window else [])
    if grammar is not None:
        if lazy_grammar_triggers:
            s.set_lazy_grammar(grammar, "root", list(lazy_grammar_triggers), [])
        else:
            s.set_grammar(grammar)
    return s


def _penalties_only_lower(o: RequestOptions) -> bool:
    """Whether every penalty can only lower a token's logit (never raise it)."""
    return o.repeat_penalty >= 1.0 and o.frequency_penalty >= 0.0 and o.presence_penalty >= 0.0
