"""Go ``text/template``, the subset Ollama's Modelfile TEMPLATEs use: parse once, render many times.

    tmpl = GoTemplate(modelfile_template)                  # TemplateError on bad syntax
    prompt = tmpl.render(ollama_template_data(messages, tools))
    prompt = tmpl.render_ollama(messages, tools)           # /api/chat: Ollama's template.Execute
    prompt = tmpl.render_ollama_generate(prompt, system=s) # /api/generate (not raw)
    prompt = tmpl.render_ollama_generate(prefix, suffix=s) # fill-in-the-middle, if supports_insert

Design: ``lexer`` turns source into tokens (trimming and comments applied); ``parser`` builds
the tree of ``nodes`` and the ``{{define}}``d templates, refusing unknown functions, undefined
variables and nesting past ``MAX_NESTING``; ``execute`` walks a tree against data, calling
``functions`` and printing through ``gofmt`` (Go's ``fmt``) and ``gojson`` (``encoding/json``),
under the ``limits`` of one render. ``template`` holds ``GoTemplate``, which ties them together
and turns internal errors into TemplateError with line and column. ``ollama_types`` holds the
values Ollama gives its templates and ``ollama`` binds chat JSON to them and ports Ollama's
``template.Execute`` (fill-in-the-middle, chat, and legacy templates run once per exchange).

Syntax (Go's rules, pkg.go.dev/text/template): text and ``{{ }}`` actions with ``{{-``/``-}}``
trimming, ``{{/* */}}`` comments, pipelines with ``|``, parenthesised sub-pipelines, fields
``.A.B``, ``$x.A``, ``$``, chains ``(pipe).A``, variables (``$x := ...``, ``$x = ...``),
``if/else if/else``, ``with/else with/else``, ``range`` over slices, maps and ints (``$i, $e :=``,
``else``, ``break``, ``continue``), ``define``/``template``/``block``; literals: strings with Go
escapes, raw strings, char constants, ints (0x, 0o, 0b, _), floats, ``true``/``false``/``nil``.
Functions: ``and or not eq ne lt le gt ge len index slice print printf println html js urlquery``
and Ollama's ``json currentDate yesterdayDate toTypeScriptType``. Unknown functions and
undefined variables are parse errors, as in Go.

Values: a Python mapping is a Go ``map[string]any`` (a missing key reads as nil, Ollama's
``missingkey=zero``; range, printing and ``json`` go in sorted key order); list/tuple is a
slice; None is nil (an action prints ``<no value>``, ``print`` prints ``<nil>``);
bool/int/float/str are Go's bool/int/float64/string; other objects are structs whose exported
(capitalised) attributes are fields; methods are never called. A class may act as a Go
``fmt.Stringer`` with ``go_print(sink)``, as a ``json.Marshaler`` with ``go_json_value()``
(a value to encode instead), and as an ordered map with ``go_map_items()``. Printing
follows ``fmt``'s ``%v``: ``[a b]``, ``map[k:v]``, ``{f1 f2}``, floats as ``%g``
(``1e+06``); ``printf`` parses its format as Go does (a width or precision past 10^6 gives
``%!(NOVERB)``). ``json`` follows ``encoding/json``: compact, ``<>&`` escaped as
``\\u003c`` etc., map keys sorted, floats like Go, and "" for a value Go cannot encode.

Deliberate differences from Go: ``len``/``index``/``slice`` on strings count UTF-8 bytes like Go
but a slice that splits a character yields U+FFFD; Ollama's tools print ``{{ .Function }}`` as
JSON where Ollama since v0.14 prints a Go struct (an acknowledged Ollama bug, see
``ollama_types``); pointers print as their values; ``call``, ``%p``, ``%+v``/``%#v`` and
complex numbers are not supported; a parse error names line and column (Go names only the
line); nil in a ranged list reads its fields as nil where Go raises; template calls nest at
most ``MAX_NESTING`` deep (Go: 100000).

Rendering is bounded (see ``limits``): past ``timeout_s``, ``max_output_chars`` (the output,
and any one value a function builds) or ``max_memory_bytes`` (everything the render builds)
it raises TemplateLimitError naming the limit, even in the middle of a single function call,
so a Modelfile template cannot hang the server or exhaust its memory.
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
