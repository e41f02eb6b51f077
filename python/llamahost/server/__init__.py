"""``llamahost serve``: Ollama's REST API (and OpenAI's ``/v1``) over the model store and runners.

Modules (import what you need; this package imports nothing on its own)::

    schemas            Ollama's wire schemas: one pydantic model per request and response
    app                ServerConfig (from LLAMAHOST_* variables) and create_app(config)
    security           pure-ASGI middleware: Host check, CORS, API key, body cap, access log
    errors             {"error": ...} responses, request parsing, exception -> status
    streaming          answers made of events (NDJSON lines, or the last one), thread_events
    routes_models      /, /api/version, tags, show, copy, delete, pull, push, create, blobs
    routes_inference   generate, chat, embed, embeddings, ps
    scheduler          which runners are loaded, slots, queue, keep_alive, eviction (with
                       llamahost.memory: a model's estimate from its GGUF header)
    runner_process     one runner subprocess: start, requests, death, kill
    runner_http        the lean HTTP/1.1 client that carries generation streams
    openai_*           OpenAI's /v1: schemas, errors, the adapter to Ollama's, the routes
    serve              serve_forever(config): uvicorn with a graceful SIGTERM/Ctrl-C

The server process never loads weights or imports ``llamahost._native``: models run in
runner processes (``llamahost.runner``) that the scheduler (``app.state.scheduler``) starts.
"""
