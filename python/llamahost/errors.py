"""Every exception llamahost raises, in one hierarchy.

The native extension raises these same classes (it imports this module when it loads),
so ``except llamahost.LlamahostError`` catches everything the library raises on purpose.

    LlamahostError
    ├── OptionError (ValueError)          a bad option/parameter value; names it and its range
    ├── ModelLoadError                    llama.cpp refused a model file; says why and which file
    │   └── ShardError                    a split GGUF is incomplete or inconsistent
    ├── GGUFError (ValueError)            a file is not a readable GGUF (bad magic, truncated, ...)
    ├── ContextError                      a context could not be created
    ├── DecodeError                       llama_decode failed
    │   ├── ContextFullError              no KV-cache slot left for the batch (decode returned 1)
    │   ├── AbortedError                  aborted from another thread (decode returned 2)
    │   └── InvalidBatchError             the batch was rejected (decode returned -1)
    ├── ContextOverflowError              a prompt does not fit the context and truncation is off
    ├── TokenizeError (ValueError)        text could not be tokenized / ids are out of range
    ├── GrammarError (ValueError)         a GBNF grammar or JSON schema could not be compiled
    ├── SamplerError (ValueError)         a sampler could not be built from the given values
    ├── StateError                        a context state could not be saved or restored
    ├── TemplateError                     a chat template failed to render
    │   └── TemplateSecurityError         a template tried something the sandbox forbids
    ├── InvalidNameError (ValueError)     a model name breaks `[host/][namespace/]model[:tag]` rules
    ├── InvalidDigestError (ValueError)   a blob digest is not `sha256:<64 hex>` / `sha256-<64 hex>`
    ├── BlobError                         a blob could not be stored or read
    │   ├── BlobNotFoundError (FileNotFoundError)   no blob with that digest in the store
    │   └── DigestMismatchError           written bytes do not match the declared digest or size
    ├── ManifestError                     a manifest is malformed, unreadable or not writable
    │   └── ManifestNotFoundError (FileNotFoundError)   no manifest for that model name
    │       └── ModelNotFoundError        no model of that name in the store
    ├── ModelfileError (ValueError)       a Modelfile line is malformed or holds a bad value
    └── RegistryError                     a pull or push failed; carries the HTTP status and code
        ├── RegistryAuthError             credentials missing or refused, or a foreign token realm
        ├── RegistryNotFoundError         the registry has no such manifest, blob or repository
        ├── RegistryConnectionError       the registry could not be reached (after retries)
        ├── RegistryResponseError         an unexpected status, or a malformed or oversized body
        └── RegistryDigestMismatchError (also DigestMismatchError)   a blob failed verification
"""

from __future__ import annotations


class LlamahostError(Exception):
    """Base class of every error llamahost raises on purpose."""


class OptionError(LlamahostError, ValueError):
    """An option or parameter has a bad name, type or value.

    The message names the option and what is allowed, e.g.
    "`top_p` must be in [0, 1], got 1.5".
    """

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class ModelLoadError(LlamahostError):
    """llama.cpp could not load a model; the message carries its reason and the file."""


class InsufficientMemoryError(ModelLoadError):
    """A model does not fit in the memory the machine has (its GPUs' and its own), found
    before loading; ``needed`` and ``available`` are bytes."""

    def __init__(self, message: str, *, needed: int, available: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.available = available


class ShardError(ModelLoadError):
    """A split GGUF model is missing shards, or its shards do not belong together."""


class GGUFError(LlamahostError, ValueError):
    """A file is not a readable GGUF file."""


class ContextError(LlamahostError):
    """A llama context could not be created with the requested parameters."""


class DecodeError(LlamahostError):
    """llama_decode/llama_encode returned an error."""


class ContextFullError(DecodeError):
    """No KV-cache slot for the batch: use a larger num_ctx or a shorter input."""


class AbortedError(DecodeError):
    """The computation was aborted via Context.abort() from another thread."""


class InvalidBatchError(DecodeError):
    """The batch was rejected (bad token id, position or sequence id)."""


class ContextOverflowError(LlamahostError):
    """The prompt does not fit in the context window and truncation was not allowed."""

    def __init__(self, message: str, n_prompt: int, n_ctx: int) -> None:
        super().__init__(message)
        self.n_prompt = n_prompt
        self.n_ctx = n_ctx


class TokenizeError(LlamahostError, ValueError):
    """Text could not be tokenized, or token ids are not in the vocabulary."""


class GrammarError(LlamahostError, ValueError):
    """A GBNF grammar or JSON schema could not be turned into a sampler."""


class SamplerError(LlamahostError, ValueError):
    """A sampler could not be created from the given parameters."""


class StateError(LlamahostError):
    """A context state could not be saved or restored."""


class TemplateError(LlamahostError):
    """A chat template failed to render."""


class TemplateSecurityError(TemplateError):
    """A chat template tried to reach something the sandbox forbids, or ran past its limits."""


class TemplateLimitError(TemplateSecurityError):
    """A template ran past a time, size or memory limit; the message names the limit."""


class InvalidNameError(LlamahostError, ValueError):
    """A model name does not follow `[host/][namespace/]model[:tag]` and Ollama's part rules.

    The message names the offending part and what it may contain; ``name`` is the input.
    """

    def __init__(self, message: str, name: object = None) -> None:
        super().__init__(message)
        self.name = name


class InvalidDigestError(LlamahostError, ValueError):
    """A blob digest is not ``sha256:<64 hex>`` or ``sha256-<64 hex>``; ``value`` is the input."""

    def __init__(self, message: str, value: object = None) -> None:
        super().__init__(message)
        self.value = value


class BlobError(LlamahostError):
    """A blob could not be written to, read from or found in the blob store."""


class BlobNotFoundError(BlobError, FileNotFoundError):
    """The store holds no blob with the requested digest."""


class DigestMismatchError(BlobError):
    """The bytes written for a blob do not match the digest or size they were declared with.

    ``expected`` and ``actual`` hold the two digests (as ``sha256:<hex>`` strings) or the two
    sizes in bytes; the message says which.
    """

    def __init__(self, message: str, expected: str | int, actual: str | int) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class ManifestError(LlamahostError):
    """A manifest is malformed or unreadable, or could not be written."""


class ManifestNotFoundError(ManifestError, FileNotFoundError):
    """The store holds no manifest for the requested model name."""


class ModelNotFoundError(ManifestNotFoundError):
    """No model of that name in the store (pull or create it first)."""


class RegistryError(LlamahostError):
    """Talking to a model registry (OCI distribution v2) failed.

    The message starts with the operation and model, then the registry's own message and
    the HTTP status, e.g. "pull 127.0.0.1:5000/library/x:latest: manifest unknown (404)".
    ``status`` is the HTTP status (None when no response came) and ``code`` the registry's
    error code (``MANIFEST_UNKNOWN``, ``UNAUTHORIZED``, ...) when it sent one.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RegistryAuthError(RegistryError):
    """The registry wants credentials that are missing or were refused, or its token realm
    is on another host than the registry (never contacted)."""


class RegistryNotFoundError(RegistryError):
    """The registry has no such manifest, blob or repository (HTTP 404)."""


class RegistryConnectionError(RegistryError):
    """The registry could not be reached, or kept dropping the connection, after retries."""


class RegistryResponseError(RegistryError):
    """The registry answered with an unexpected status or a malformed or oversized body."""


class RegistryDigestMismatchError(RegistryError, DigestMismatchError):
    """A downloaded blob does not match its manifest's digest or size; nothing was stored.

    Catchable both as a RegistryError and as a DigestMismatchError; ``expected`` and
    ``actual`` are as in DigestMismatchError.
    """

    def __init__(self, message: str, expected: str | int, actual: str | int) -> None:
        DigestMismatchError.__init__(self, message, expected, actual)
        self.status = None
        self.code = None


class ModelfileError(LlamahostError, ValueError):
    """A Modelfile has a syntax error or a bad value.

    ``line`` is the 1-based line the problem starts on, or None when there is none (a missing
    FROM, a Modelfile built in code); the message then begins with it:
    "line 3: unknown parameter `temprature`; did you mean `temperature`?".
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


__all__ = [
    "AbortedError",
    "BlobError",
    "BlobNotFoundError",
    "ContextError",
    "ContextFullError",
    "ContextOverflowError",
    "DecodeError",
    "DigestMismatchError",
    "GGUFError",
    "GrammarError",
    "InsufficientMemoryError",
    "InvalidBatchError",
    "InvalidDigestError",
    "InvalidNameError",
    "LlamahostError",
    "ManifestError",
    "ManifestNotFoundError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelfileError",
    "OptionError",
    "RegistryAuthError",
    "RegistryConnectionError",
    "RegistryDigestMismatchError",
    "RegistryError",
    "RegistryNotFoundError",
    "RegistryResponseError",
    "SamplerError",
    "ShardError",
    "StateError",
    "TemplateError",
    "TemplateLimitError",
    "TemplateSecurityError",
    "TokenizeError",
]
