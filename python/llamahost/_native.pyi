"""Thin bindings over llama.cpp's C API (see llamahost for the Python engine)."""

from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing

__all__: list[str] = [
    "DEFAULT_SEED",
    "TOKEN_NULL",
    "Adapter",
    "Batch",
    "Context",
    "Generator",
    "Model",
    "Sampler",
    "Vocab",
    "apply_builtin_template",
    "backend_libraries",
    "backend_load_failures",
    "builtin_templates",
    "bundled_backend_dir",
    "context_default_params",
    "device_supports_matmul",
    "get_log_level",
    "ggml_types",
    "llama_time_us",
    "merge_gguf",
    "read_gguf",
    "set_log_level",
    "split_gguf",
    "system_info",
]

class Model:
    """
    A loaded llama.cpp model (weights and vocabulary). Immutable once loaded and safe to
    share between threads; create one Context per concurrent user.
    """
    @staticmethod
    def load(
        paths: collections.abc.Sequence[str],
        *,
        n_gpu_layers: int = -1,
        main_gpu: int = 0,
        split_mode: int = 1,
        tensor_split: collections.abc.Sequence[float] = [],
        use_mmap: bool | None = None,
        use_mlock: bool = False,
        vocab_only: bool = False,
        check_tensors: bool = False,
        use_extra_bufts: bool = True,
        progress_callback: typing.Any = None,
    ) -> Model:
        """
        Load a model from one GGUF file or an explicit, ordered list of
        split files. `progress_callback(progress: float) -> bool | None` is called during the
        load; returning False cancels it (ModelLoadError). `use_extra_bufts` lets llama.cpp put
        CPU weights in its extra buffer types (repacked layouts, AMX). Raises ModelLoadError with
        llama.cpp's own reason and the file names.
        """
    def chat_template(self, name: str | None = None) -> str | None:
        """
        The GGUF's chat template (`tokenizer.chat_template[.name]`), or None.
        """
    def meta_value(self, key: str) -> str | None: ...
    def metadata(self) -> dict[str, typing.Any]:
        """
        All GGUF key/values as llama.cpp formats them (strings).
        """
    @property
    def decoder_start_token(self) -> int: ...
    @property
    def description(self) -> str: ...
    @property
    def file_type(self) -> str: ...
    @property
    def has_decoder(self) -> bool: ...
    @property
    def has_encoder(self) -> bool: ...
    @property
    def is_hybrid(self) -> bool: ...
    @property
    def is_recurrent(self) -> bool: ...
    @property
    def n_cls_out(self) -> int: ...
    @property
    def n_ctx_train(self) -> int: ...
    @property
    def n_embd(self) -> int: ...
    @property
    def n_head(self) -> int: ...
    @property
    def n_head_kv(self) -> int: ...
    @property
    def n_layer(self) -> int: ...
    @property
    def n_params(self) -> int: ...
    @property
    def n_swa(self) -> int: ...
    @property
    def paths(self) -> list[str]: ...
    @property
    def size(self) -> int: ...
    @property
    def vocab(self) -> Vocab: ...

class Adapter:
    """
    A LoRA adapter (GGUF) loaded for one model; apply it with Context.set_adapters.
    """
    @staticmethod
    def load(model: Model, path: str) -> Adapter:
        """
        Load a LoRA adapter GGUF for `model` (ModelLoadError with the reason).
        """
    def meta_value(self, key: str) -> str | None: ...
    @property
    def path(self) -> str: ...

class Vocab:
    """
    The vocabulary of a Model (tokenizer and special tokens).
    """
    def attr(self, token: int) -> int: ...
    def detokenize(
        self,
        tokens: collections.abc.Sequence[int],
        remove_special: bool = False,
        unparse_special: bool = False,
    ) -> str: ...
    def eog_tokens(self) -> list[int]:
        """
        Every end-of-generation token id.
        """
    def is_control(self, token: int) -> bool: ...
    def is_eog(self, token: int) -> bool: ...
    def score(self, token: int) -> float: ...
    def text(self, token: int) -> str: ...
    def token_to_piece(self, token: int, special: bool = False) -> bytes:
        """
        The bytes of one token (may be part of a UTF-8 character).
        """
    def tokens_with_attr(self, mask: int) -> list[int]:
        """
        Token ids with any of the attribute bits in `mask` (llama_token_attr: 1 unknown, 8 control, 16 user-defined, ...).
        """
    def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = False
    ) -> list[int]:
        """
        Text (UTF-8) to token ids. `add_special` adds BOS/EOS as the model asks; `parse_special` turns special-token text such as <|im_start|> into its id.
        """
    @property
    def add_bos(self) -> bool: ...
    @property
    def add_eos(self) -> bool: ...
    @property
    def bos(self) -> int: ...
    @property
    def eos(self) -> int: ...
    @property
    def eot(self) -> int: ...
    @property
    def fim_mid(self) -> int: ...
    @property
    def fim_pre(self) -> int: ...
    @property
    def fim_suf(self) -> int: ...
    @property
    def n_tokens(self) -> int: ...
    @property
    def nl(self) -> int: ...
    @property
    def pad(self) -> int: ...
    @property
    def sep(self) -> int: ...
    @property
    def type(self) -> int: ...

class Batch:
    """
    Tokens for one decode call: each with a position, one or more sequence ids and whether its
    logits/embeddings are wanted.
    """
    def __init__(self, capacity: int, n_seq_max: int = 1) -> None: ...
    def __len__(self) -> int: ...
    def add(
        self, token: int, pos: int, seq_ids: collections.abc.Sequence[int], logits: bool = False
    ) -> None: ...
    def add_sequence(
        self,
        tokens: collections.abc.Sequence[int],
        pos0: int,
        seq_id: int = 0,
        logits_last: bool = True,
        logits_all: bool = False,
    ) -> None:
        """
        Add a run of one sequence's tokens; outputs for the last one, or for all.
        """
    def clear(self) -> None: ...
    @property
    def capacity(self) -> int: ...

class Context:
    """
    A llama.cpp inference context: KV cache, compute buffers and outputs for up to n_seq_max
    sequences. Not thread-safe: use it from one thread at a time, except abort(), which may be
    called from any thread.
    """
    def __init__(
        self,
        model: Model,
        *,
        n_ctx: int,
        n_batch: int,
        n_ubatch: int,
        n_seq_max: int,
        n_threads: int,
        n_threads_batch: int,
        flash_attn: int,
        type_k: int,
        type_v: int,
        embeddings: bool,
        pooling_type: int,
        attention_type: int,
        rope_freq_base: float,
        rope_freq_scale: float,
        offload_kqv: bool,
        kv_unified: bool,
        swa_full: bool,
        no_perf: bool,
    ) -> None: ...
    def abort(self) -> None:
        """
        Ask a running decode or generation to stop (thread-safe); it raises AbortedError.
        """
    def clear_abort(self) -> None: ...
    def decode(self, batch: Batch) -> None:
        """
        llama_decode with the GIL released. ContextFullError (1), AbortedError (2), InvalidBatchError (-1), DecodeError otherwise.
        """
    def decode_tokens(
        self,
        tokens: collections.abc.Sequence[int],
        pos0: int,
        seq_id: int = 0,
        logits_last: bool = True,
    ) -> None:
        """
        Decode a run of tokens of one sequence in n_batch chunks, GIL released.
        """
    def embeddings(self, i: int = -1) -> numpy.typing.NDArray[numpy.float32]: ...
    def encode(self, batch: Batch) -> None: ...
    def logits(self, i: int = -1) -> numpy.typing.NDArray[numpy.float32]:
        """
        Logits of output i as a numpy view (no copy), valid until the next decode.
        """
    def memory_clear(self, data: bool = True) -> None: ...
    def perf(self) -> dict[str, typing.Any]: ...
    def perf_reset(self) -> None: ...
    def seq_add(self, seq_id: int, p0: int, p1: int, delta: int) -> None: ...
    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """
        Copy positions [p0, p1) of sequence src to dst (shared cells in a unified KV cache; a whole-sequence copy between separate streams).
        """
    def seq_keep(self, seq_id: int) -> None: ...
    def seq_pos_max(self, seq_id: int) -> int: ...
    def seq_pos_min(self, seq_id: int) -> int: ...
    def seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        """
        Remove positions [p0, p1) of a sequence; False if a partial removal is impossible.
        """
    def seq_state_get(self, seq_id: int) -> bytes: ...
    def seq_state_set(self, data: bytes, seq_id: int) -> None: ...
    def sequence_embeddings(self, seq_id: int) -> numpy.typing.NDArray[numpy.float32]: ...
    def set_adapters(
        self,
        adapters: collections.abc.Sequence[Adapter],
        scales: collections.abc.Sequence[float] = [],
    ) -> None:
        """
        Use these LoRA adapters (scale 1.0 each unless given); [] removes them.
        """
    def set_causal_attn(self, causal: bool) -> None: ...
    def set_embeddings(self, enabled: bool) -> None: ...
    def set_n_threads(self, n_threads: int, n_threads_batch: int) -> None: ...
    def state_get(self) -> bytes:
        """
        The whole context state (memory, logits, embeddings) as bytes.
        """
    def state_load_file(self, path: str) -> list[int]:
        """
        Restore a state file; returns the tokens saved with it.
        """
    def state_save_file(self, path: str, tokens: collections.abc.Sequence[int]) -> None: ...
    def state_set(self, data: bytes) -> None: ...
    @property
    def abort_requested(self) -> bool: ...
    @property
    def can_shift(self) -> bool: ...
    @property
    def model(self) -> Model: ...
    @property
    def n_batch(self) -> int: ...
    @property
    def n_ctx(self) -> int: ...
    @property
    def n_ctx_seq(self) -> int: ...
    @property
    def n_seq_max(self) -> int: ...
    @property
    def n_threads(self) -> int: ...
    @property
    def n_threads_batch(self) -> int: ...
    @property
    def n_ubatch(self) -> int: ...
    @property
    def pooling_type(self) -> int: ...

class Sampler:
    """
    A sampler chain (llama_sampler_chain) built step by step, plus an optional GBNF grammar.
    Add filters in order and end with a selecting sampler (greedy, dist, mirostat).
    Parameter ranges are validated by llamahost.Options before they get here.
    """
    def __init__(self, model: Model) -> None: ...
    def accept(self, token: int) -> None: ...
    def accept_history(self, tokens: collections.abc.Sequence[int]) -> None:
        """
        Feed earlier tokens (e.g. the prompt) to the penalty and DRY samplers only.
        """
    def add_dist(self, seed: int = 4294967295) -> None: ...
    def add_dry(
        self,
        multiplier: float,
        base: float,
        allowed_length: int,
        penalty_last_n: int,
        sequence_breakers: collections.abc.Sequence[str],
    ) -> None: ...
    def add_greedy(self) -> None: ...
    def add_logit_bias(self, bias: collections.abc.Mapping[int, float]) -> None: ...
    def add_min_p(self, p: float, min_keep: int = 1) -> None: ...
    def add_mirostat(self, seed: int, tau: float, eta: float, m: int = 100) -> None: ...
    def add_mirostat_v2(self, seed: int, tau: float, eta: float) -> None: ...
    def add_penalties(
        self, last_n: int, repeat: float, frequency: float, presence: float
    ) -> None: ...
    def add_temp(self, t: float) -> None: ...
    def add_temp_ext(self, t: float, delta: float, exponent: float) -> None: ...
    def add_top_k(self, k: int) -> None: ...
    def add_top_n_sigma(self, n: float) -> None: ...
    def add_top_p(self, p: float, min_keep: int = 1) -> None: ...
    def add_typical(self, p: float, min_keep: int = 1) -> None: ...
    def add_xtc(
        self, probability: float, threshold: float, min_keep: int = 1, seed: int = 4294967295
    ) -> None: ...
    def reset(self) -> None: ...
    def sample(self, context: Context, idx: int = -1) -> int:
        """
        Sample (and accept) a token from output idx of the context's last decode.
        """
    def set_grammar(self, grammar: str, root: str = "root") -> None:
        """
        Constrain sampling to a GBNF grammar (GrammarError if it does not parse).
        """
    def set_lazy_grammar(
        self,
        grammar: str,
        root: str = "root",
        trigger_patterns: collections.abc.Sequence[str] = [],
        trigger_tokens: collections.abc.Sequence[int] = [],
    ) -> None:
        """
        A grammar that applies only once the output matches a trigger pattern or token.
        """
    @property
    def has_grammar(self) -> bool: ...
    @property
    def names(self) -> list[str]: ...
    @property
    def seed(self) -> int: ...

class Generator:
    """
    The token loop: decode the previous token, sample the next, accept it, hand it over.
    Iterate it for `(token, piece_bytes)` pairs, or call run(callback). Ends with
    done_reason "stop" (end-of-generation token), "length" (n_predict reached or the context
    is full and may not shift) or "callback" (the callback returned False, or stop()).
    Raises AbortedError if Context.abort() is called meanwhile.
    """
    def __init__(
        self,
        context: Context,
        sampler: Sampler,
        kv_tokens: collections.abc.Sequence[int],
        *,
        seq_id: int = 0,
        n_predict: int = -1,
        special: bool = False,
        n_keep: int = 0,
        shift: bool = True,
    ) -> None: ...
    def __iter__(self) -> Generator: ...
    def __next__(self) -> tuple[int, bytes]: ...
    def run(self, callback: collections.abc.Callable[[int, bytes], bool | None]) -> None:
        """
        Generate to the end in C++, calling callback(token, piece_bytes) per token; a False return stops generation.
        """
    def stop(self) -> None:
        """
        End generation now (done_reason 'callback').
        """
    @property
    def done_reason(self) -> str | None: ...
    @property
    def eog_token(self) -> int: ...
    @property
    def kv_tokens(self) -> list[int]:
        """
        The tokens the context holds for this sequence, in order.
        """
    @property
    def n_generated(self) -> int: ...
    @property
    def n_shifted(self) -> int:
        """
        Tokens dropped by context shifts so far.
        """
    @property
    def pending_token(self) -> int:
        """
        The last sampled token, not yet decoded into the context (-1 if none).
        """

def _enable_python_logging(enabled: bool) -> None:
    """
    Turn forwarding to Python on or off (off at interpreter exit).
    """

def _log_test_message(level: int, text: str) -> None:
    """
    Feed one message through the log bridge (tests).
    """

def apply_builtin_template(
    template: str, messages: collections.abc.Sequence[tuple[str, str]], add_assistant: bool = True
) -> str:
    """
    Format (role, content) messages with one of llama.cpp's built-in templates,
    chosen by name ("chatml", "llama3", ...) or detected from a Jinja template's text.
    Raises TemplateError if none matches.
    """

def backend_libraries() -> dict[str, str]:
    """
    Each registered ggml backend's name -> the shared library it was loaded from.
    """

def backend_load_failures() -> list[dict[str, str]]:
    """
    GPU backend libraries shipped in the package that are not in use, and why.
    """

def bundled_backend_dir() -> str:
    """
    The folder the backends were loaded from; empty when they are compiled in.
    """

def builtin_templates() -> list[str]: ...
def context_default_params() -> dict[str, typing.Any]:
    """
    llama.cpp's default context parameters (the defaults of ContextParams).
    """

def device_supports_matmul(device: str, type: int, rows: int, cols: int) -> bool:
    """
    Whether a device runs a matmul by a weight of this ggml type and shape (rows x cols).
    """

def get_log_level() -> int: ...
def ggml_types() -> dict[str, typing.Any]:
    """
    ggml tensor type names and ids (for type_k/type_v).
    """

def llama_time_us() -> int: ...
def merge_gguf(first_shard: str, out_path: str) -> str:
    """
    Merge all shards of a split model, found from its first shard, into one file.
    """

def read_gguf(path: str, max_array_length: int = -1) -> dict[str, typing.Any]:
    """
    Read a GGUF file's header, metadata and tensor infos without loading weights.
    Arrays longer than max_array_length (if >= 0) are left out and listed in
    "omitted_arrays" as (item type, length). Raises GGUFError for anything that is not a
    readable GGUF file.
    """

def set_log_level(level: int) -> None:
    """
    Lowest llama.cpp log level forwarded to Python logging (1 debug .. 4 error, 5 off).
    """

def split_gguf(path: str, out_prefix: str, n_splits: int) -> list[str]:
    """
    Write <out_prefix>-0000k-of-0000n.gguf shards that llama.cpp loads as one model.
    """

def system_info() -> dict[str, typing.Any]:
    """
    llama.cpp build commit, backends compiled in, devices seen, CPU features.
    """

DEFAULT_SEED: int = 4294967295
TOKEN_NULL: int = -1
