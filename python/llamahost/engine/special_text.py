"""Keep message content from forging special tokens.

A rendered chat prompt is tokenized with special-token parsing, so that the template's own
``<|im_start|>`` becomes the control token it stands for. Text that came from a message (user,
system, tool, assistant content, tool arguments) must stay plain text, even when it spells a
control token: otherwise a user could close their turn and open a system one.

Before rendering, every occurrence of a control (or unknown) token's text inside message
values is replaced by a marker (``\\U000F0000<n>\\U000F0001``, from a private-use plane); the
template renders around the markers as it would around the text; the result is tokenized in
runs: template text with special parsing, each marked occurrence as plain text. Content that
spells no control token (nearly all) is left untouched and costs one scan.

    guard = SpecialTextGuard(["<|im_start|>", "<|im_end|>"])
    shielded = guard.shield(messages)          # what the template sees
    tokens = guard.tokenize(render(shielded.value), shielded.originals, tokenize)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_OPEN = "\U000f0000"
_CLOSE = "\U000f0001"
_MARKER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_MARKER_CHARS = re.compile(f"[{_OPEN}{_CLOSE}]")

#: tokenize(text, add_special, parse_special) -> token ids
Tokenize = Callable[[str, bool, bool], list[int]]


@dataclass
class Shielded:
    """Values with markers in place of special-token text, and the texts they replace."""

    value: Any
    originals: list[str] = field(default_factory=list)


class SpecialTextGuard:
    """Finds the texts of a vocabulary's control tokens in untrusted values."""

    def __init__(self, special_texts: Iterable[str]) -> None:
        texts = {t for t in special_texts if t}
        self._texts = texts
        self._lengths = sorted({len(t) for t in texts}, reverse=True)  # longest match wins
        firsts = "".join(sorted({t[0] for t in texts}))
        self._starts = re.compile(f"[{re.escape(firsts)}]") if firsts else None

    def shield(self, value: Any) -> Shielded:
        """`value` (strings, lists and dicts, recursively) with special texts marked."""
        out = Shielded(None)
        out.value = self._shield(value, out.originals)
        return out

    def tokenize(
        self, prompt: str, originals: list[str], tokenize: Tokenize, *, add_special: bool
    ) -> list[int]:
        """Tokens of a rendered `prompt`: marked texts plain, the rest with special parsing.

        The template's own control-token texts become their tokens; everything between
        them (template text and marked texts alike) is tokenized as one plain run, as the
        tokenizer would have split it, so no run boundary adds a space or splits a merge.
        """
        if not originals:
            return tokenize(prompt, add_special, True)
        runs: list[tuple[str, bool]] = []  # (text, is a control token the template wrote)
        position = 0
        for match in _MARKER.finditer(prompt):
            index = int(match.group(1))
            if index >= len(originals):
                continue  # not one of ours (the template wrote it): ordinary text
            self._split_template_text(prompt[position : match.start()], runs)
            _append_plain(runs, originals[index])
            position = match.end()
        self._split_template_text(prompt[position:], runs)
        tokens: list[int] = []
        for i, (text, special) in enumerate(runs):
            tokens += tokenize(text, add_special and i == 0, special)
        return tokens

    def _split_template_text(self, text: str, runs: list[tuple[str, bool]]) -> None:
        position = 0
        for start, found in self._find(text):
            _append_plain(runs, text[position:start])
            runs.append((found, True))
            position = start + len(found)
        _append_plain(runs, text[position:])

    def _find(self, text: str) -> Iterator[tuple[int, str]]:
        """(position, special text) of each special text in `text`, left to right."""
        if self._starts is None:
            return
        position = 0
        for match in self._starts.finditer(text):
            start = match.start()
            if start < position:
                continue  # inside a special text found just before
            found = next(
                (
                    text[start : start + n]
                    for n in self._lengths
                    if text[start : start + n] in self._texts
                ),
                None,
            )
            if found is not None:
                yield start, found
                position = start + len(found)

    @staticmethod
    def unmark(prompt: str, originals: list[str]) -> str:
        """`prompt` with the marked texts put back (what the template would have written)."""
        if not originals:
            return prompt

        def original(match: re.Match[str]) -> str:
            index = int(match.group(1))
            return originals[index] if index < len(originals) else match.group(0)

        return _MARKER.sub(original, prompt)

    def _shield(self, value: Any, originals: list[str]) -> Any:
        if isinstance(value, str):
            return self._shield_text(value, originals)
        if isinstance(value, Mapping):
            return {k: self._shield(v, originals) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._shield(v, originals) for v in value]
        return value

    def _shield_text(self, text: str, originals: list[str]) -> str:
        if _MARKER_CHARS.search(text):
            text = _MARKER_CHARS.sub("\ufffd", text)  # a marker is never taken from content
        pieces: list[str] = []
        position = 0
        for start, found in self._find(text):
            pieces += (text[position:start], f"{_OPEN}{len(originals)}{_CLOSE}")
            originals.append(found)
            position = start + len(found)
        if not pieces:
            return text
        pieces.append(text[position:])
        return "".join(pieces)


def _append_plain(runs: list[tuple[str, bool]], text: str) -> None:
    """Add plain `text`, joined to the plain run before it."""
    if not text:
        return
    if runs and not runs[-1][1]:
        runs[-1] = (runs[-1][0] + text, False)
    else:
        runs.append((text, False))
