"""Go ``text/template``, the subset Ollama's Modelfile TEMPLATEs use: parse once, render many times.

    tmpl = GoTemplate(modelfile_template)                  # TemplateError on bad syntax
    prompt = tmpl.render(ollama_template_data(messages, tools))
    prompt = tmpl.render_ollama(messages, tools)           # Ollama's own Execute, legacy path too

Design: ``lexer`` turns source into tokens (trimming and comments applied); ``parser`` builds
the tree of ``nodes`` and the ``{{define}}``d templates, refusing unknown functions, undefined
variables and nesting past ``MAX_NESTING``; ``execute`` walks a tree against data, calling
``functions`` and printing through ``gofmt`` (Go's ``fmt`` and ``encoding/json``), under a
``Budget`` of time and output size. ``template`` holds ``GoTemplate``, which ties them together
and turns internal errors into TemplateError with line and column. ``ollama_types`` holds
Ollama's typed values and ``ollama`` binds chat JSON to them and plans Ollama's
``template.Execute`` runs (legacy templates run once per exchange).

Syntax (Go's rules, pkg.go.dev/text/template): text and ``{{ }}`` actions with ``{{-``/``-}}``
trimming, ``{{/* */}}`` comments, pipelines with ``|``, parenthesised sub-pipelines, fields
``.A.B``, ``$x.A``, ``$``, chains ``(pipe).A``, variables (``$x := ...``, ``$x = ...``),
``if/else if/else``, ``with/else with/else``, ``range`` over slices, maps and ints (``$i, $e :=``,
``else``, ``break``, ``continue``), ``define``/``template``/``block``; literals: strings with Go
escapes, raw strings, char constants, ints (0x, 0o, 0b, _), floats, ``true``/``false``/``nil``.
Functions: ``and or not eq ne lt le gt ge len index slice print printf println html js urlquery``
and Ollama's ``json``. Unknown functions and undefined variables are parse errors, as in Go.

Values: a Python mapping is a Go ``map[string]any`` (a missing key reads as nil, Ollama's
``missingkey=zero``; range and printing go in sorted key order); list/tuple is a slice; None is
nil (an action prints ``<no value>``, ``print`` prints ``<nil>``); bool/int/float/str are Go's
bool/int/float64/string; other objects are structs whose exported (capitalised) attributes are
fields; methods are never called. An object whose class defines ``go_string()`` prints through
it (Go's ``fmt.Stringer``) and one whose class defines ``go_json()`` is encoded by it (Go's
``json.Marshaler``). Printing follows ``fmt``'s ``%v``: ``[a b]``, ``map[k:v]``, ``{f1 f2}``,
floats as ``%g`` (``1e+06``). ``json`` follows ``encoding/json``: compact, ``<>&`` escaped as
``\\u003c`` etc., map keys sorted, floats like Go, and "" for a value Go cannot encode.

Deliberate differences from Go: ``len``/``index``/``slice`` on strings count UTF-8 bytes like Go
but a slice that splits a character yields U+FFFD; pointer-receiver Stringers (Ollama's
``ToolFunction``, ``ToolCallFunctionArguments``) print as JSON everywhere, where Go's
``print``/``printf`` would show the raw struct; ``call`` and complex numbers are not supported;
a parse error names line and column (Go names only the line); nil in a ranged list reads its
fields as nil where Go raises.

Rendering is bounded: past ``timeout_s`` or ``max_output_chars`` it raises
TemplateSecurityError, so a Modelfile template cannot hang or flood the server.
"""

from __future__ import annotations

from llamahost.chat.gotemplate.gojson import go_json
from llamahost.chat.gotemplate.limits import (
    DEFAULT_MAX_MEMORY_BYTES,
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_TIMEOUT_S,
)
from llamahost.chat.gotemplate.ollama import ollama_template_data
from llamahost.chat.gotemplate.ollama_types import (
    GoStruct,
    Message,
    OrderedMap,
    PropertyType,
    Tool,
    ToolCall,
    ToolCallArguments,
    ToolCallFunction,
    ToolFunction,
    ToolFunctionParameters,
    ToolList,
    ToolProperties,
    ToolProperty,
)
from llamahost.chat.gotemplate.template import GoTemplate

__all__ = [
    "DEFAULT_MAX_MEMORY_BYTES",
    "DEFAULT_MAX_OUTPUT_CHARS",
    "DEFAULT_TIMEOUT_S",
    "GoStruct",
    "GoTemplate",
    "Message",
    "OrderedMap",
    "PropertyType",
    "Tool",
    "ToolCall",
    "ToolCallArguments",
    "ToolCallFunction",
    "ToolFunction",
    "ToolFunctionParameters",
    "ToolList",
    "ToolProperties",
    "ToolProperty",
    "go_json",
    "ollama_template_data",
]
