"""The runner: one subprocess per loaded model, batching concurrent requests into one decode.

The server (``llamahost serve``) never loads weights: each model it serves runs in a runner
process, so a bad model file or a native crash kills that runner, never the server. A
runner can also be started by hand. This docstring is the contract between the two.

Command line (single or double dash, as llama-server and Ollama's runner take them)::

    llamahost runner --model PATH [--model SHARD ...] [--ctx-size 4096] [--batch-size 512]
        [--parallel 1] [--threads N] [--n-gpu-layers -1] [--main-gpu 0]
        [--tensor-split 3,1] [--flash-attn auto|on|off] [--kv-cache-type f16]
        [--lora PATH ...] [--mlock] [--no-mmap] (--port N | --socket PATH) [--verbose]

``--ctx-size`` is the context of each slot; the runner's context holds ``ctx-size x
parallel`` tokens (as Ollama sizes it). With ``--port`` it listens on 127.0.0.1 only.
When ``LLAMAHOST_RUNNER_SECRET`` is set in its environment (never on the command line),
every request must carry ``Authorization: Bearer <secret>``, else 401. A socket file is
created with mode 0600; the server puts it in a private (0700) directory.

HTTP endpoints:

- ``GET /health``: 200 ``{"status": "ok"}`` once loaded; 503 ``{"status": "loading",
  "progress": 0.42}`` while loading; 500 ``{"status": "error", "error": "..."}`` if the load
  failed (the process then exits with status 1). Answered within 100 ms even while a long
  prompt decodes.
- ``GET /info``: what was loaded: ``n_ctx`` (per slot), ``n_ctx_train``, ``parallel``,
  ``n_params``, ``size``, ``memory`` (``weights``, ``kv``, ``compute`` bytes),
  ``capabilities`` of the GGUF's template, ``metadata``.
- ``POST /api/generate``, ``POST /api/chat``, ``POST /api/embed``: Ollama's request bodies
  (``model`` is ignored), plus what the server takes from the model store: ``template``
  (the Modelfile TEMPLATE, or null for the GGUF's own), ``system`` (the request's, else the
  Modelfile SYSTEM), ``history`` (the Modelfile MESSAGEs), and ``options`` already merged
  (Modelfile PARAMETERs, then the request's). Responses are Ollama's, as NDJSON when
  ``stream`` is true (the default), without ``model`` and ``created_at`` (the server adds
  them). A bad request is 400 ``{"error": "..."}`` before anything streams; an error while
  streaming is a last line ``{"error": "..."}``. A request whose model or context options
  differ from the runner's is 400 (the server starts another runner for it).
- llama-server's own: ``POST /completion`` (``prompt`` text or tokens, ``n_predict``,
  sampling fields, ``stop``, ``grammar``, ``json_schema``, ``n_probs``, ``cache_prompt``,
  ``stream`` as SSE; response ``content``, ``stop``, ``stop_type``, ``tokens_predicted``,
  ``tokens_evaluated``, ``timings``), ``POST /embedding``, ``POST /tokenize``,
  ``POST /detokenize``, ``GET /slots``.

A client that disconnects (while queued, during prompt processing or while decoding) frees
its slot within one decode step.
"""
