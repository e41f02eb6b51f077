"""JSON Schema to llama.cpp GBNF grammar, so that constrained output validates.

A model sampled under the grammar from :func:`json_schema_to_gbnf` can only write JSON text
that parses and validates against the schema. The grammar describes a *subset* of the valid
documents, chosen so that a small model cannot wander off:

- properties come in declaration order, required ones always, optional ones or not;
  properties the schema does not declare are written only when ``additionalProperties`` is
  ``true`` or a schema, after the declared ones, with plain (unescaped) key characters;
- whitespace between tokens is bounded: nothing, one space, or a newline and up to 20
  spaces or tabs (``ws``), so a model cannot loop on spaces;
- numbers have at most 16 integer and 16 fraction digits; bounded numbers have no exponent;
- ``\\u`` escapes in strings never name a surrogate, so each ``char`` is one code point and
  ``minLength``/``maxLength`` count exactly what JSON Schema counts.

Supported: ``type`` (a name or a list; inferred from the keywords when absent); ``enum``
and ``const`` of any JSON values; ``anyOf``; ``oneOf``; ``allOf`` of object schemas (merged);
local ``$ref`` (``#/$defs/...``, ``#/definitions/...``, any JSON pointer into the document,
recursion included, one rule per referenced schema); objects (``properties``, ``required``,
``additionalProperties``); arrays (``items``, ``prefixItems``, ``minItems``, ``maxItems``,
draft-7 tuple ``items`` with ``additionalItems``); strings (``minLength``, ``maxLength``,
``pattern``, ``format`` date, time, date-time, uuid); integer bounds (``minimum``,
``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, draft-4 booleans too) exactly, and
number bounds exactly when they are whole numbers. ``true``/``{}`` is any JSON value.
Annotations (title, description, examples, default, $schema, $id, other formats, ...) are
ignored.

Where the grammar is looser than the schema: ``oneOf`` is an alternation (a value matching two
branches is not excluded), and ``enum``/``const`` values are filtered by ``type`` only, not
re-checked against other keywords beside them. Where it is stricter (still only valid
output): with ``properties`` and no ``additionalProperties``, no other keys are written; a
tuple without ``items`` gets no extra items; ``time`` and ``date-time`` use upper-case ``T``/
``Z`` and 1-9 fraction digits, without leap seconds. ``date`` knows the Gregorian leap years.

Not supported, raising :class:`~llamahost.errors.GrammarError` naming the JSON pointer:
``not``, ``if``, ``multipleOf``, ``patternProperties``, ``propertyNames``, ``dependencies``,
``min/maxProperties``, ``contains``, ``uniqueItems: true``, ``unevaluated*``, remote
``$ref``, fractional bounds on ``number``, ``pattern`` together with a length or a format,
``anyOf``/``oneOf`` beside other constraints, and regular-expression features beyond
literals, escapes, classes, ``.``, groups, ``|``, quantifiers and ``^``/``$`` at the ends.

The GBNF for ranges, patterns and literals comes from :mod:`llamahost.engine.gbnf_fragments`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from llamahost.engine.gbnf_fragments import (
    JSON_SPECIALS,
    Bound,
    class_char,
    decimal_range,
    gbnf_literal,
    group,
    integer_range,
    join,
    pattern_content,
    repeat,
)
from llamahost.errors import GrammarError

__all__ = ["JSON_OBJECT_GRAMMAR", "json_schema_to_gbnf"]

_PRIMITIVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ws": (r'| " " | "\n" [ \t]{0,20}', ()),
    "hex": ("[0-9a-fA-F]", ()),
    "raw-char": (r'[^"\\\x00-\x1F\x7F]', ()),
    "char": (
        r'raw-char | "\\" ( ["\\/bfnrt] | "u" ( [0-9a-cA-Ce-fE-F] hex{3} | [dD] [0-7] hex{2} ) )',
        ("raw-char", "hex"),
    ),
    "string": (r'"\"" char* "\"" ws', ("char", "ws")),
    "integral-part": ("[0] | [1-9] [0-9]{0,15}", ()),
    "decimal-part": ("[0-9]{1,16}", ()),
    "fraction": ('( "." decimal-part )?', ("decimal-part",)),
    "fraction-nonzero": ('"." [0-9]{0,15} [1-9]', ()),
    "fraction-zero": ('( "." [0]{1,16} )?', ()),
    "number": (
        '"-"? integral-part ( "." decimal-part )? ( [eE] [-+]? integral-part )? ws',
        ("integral-part", "decimal-part", "ws"),
    ),
    "integer": ('"-"? integral-part ws', ("integral-part", "ws")),
    "boolean": ('( "true" | "false" ) ws', ("ws",)),
    "null": ('"null" ws', ("ws",)),
    "value": (
        "object | array | string | number | boolean | null",
        ("object", "array", "string", "number", "boolean", "null"),
    ),
    "object": (
        '"{" ws ( string ":" ws value ( "," ws string ":" ws value )* )? "}" ws',
        ("string", "value", "ws"),
    ),
    "array": ('"[" ws ( value ( "," ws value )* )? "]" ws', ("value", "ws")),
    "year-mod4": ('[02468] [48] | [13579] [26] | [2468] "0"', ()),
    "date-year": ('[1-9] [0-9]{3} | "0" [1-9] [0-9]{2} | "00" [1-9] [0-9] | "000" [1-9]', ()),
    "date-leap-year": ('[0-9]{2} year-mod4 | year-mod4 "00"', ("year-mod4",)),
    "date": (
        'date-year "-" ( ( "0" [13578] | "1" [02] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] )'
        ' | ( "0" [469] | "11" ) "-" ( "0" [1-9] | [12] [0-9] | "30" )'
        ' | "02-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] ) ) | date-leap-year "-02-29"',
        ("date-year", "date-leap-year"),
    ),
    "time": (
        '( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )?'
        ' ( "Z" | [-+] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )',
        (),
    ),
    "date-time": ('date "T" time', ("date", "time")),
    "uuid": (
        'hex{8} "-" hex{4} "-" hex{4} "-" hex{4} "-" hex{12}',
        ("hex",),
    ),
}

_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
_OBJECT_KEYWORDS = ("properties", "required", "additionalProperties")
_ARRAY_KEYWORDS = ("items", "prefixItems", "additionalItems", "minItems", "maxItems")
_STRING_KEYWORDS = ("minLength", "maxLength", "pattern", "format")
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_STRING_FORMATS = ("date", "time", "date-time", "uuid")
_UNSUPPORTED_KEYWORDS = (
    *("not", "if", "multipleOf", "patternProperties", "propertyNames", "dependencies"),
    *("dependentRequired", "dependentSchemas", "minProperties", "maxProperties", "contains"),
    *("minContains", "maxContains", "unevaluatedProperties", "unevaluatedItems"),
    *("$dynamicRef", "$recursiveRef"),
)
# Keywords that constrain a value; every other keyword is an annotation and is ignored.
_CONSTRAINING_KEYWORDS = frozenset(
    ("type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref")
).union(
    _OBJECT_KEYWORDS, _ARRAY_KEYWORDS, _STRING_KEYWORDS, _NUMBER_KEYWORDS, _UNSUPPORTED_KEYWORDS
)
_IDENTIFIER = re.compile(r"[a-zA-Z0-9-]+")


def json_schema_to_gbnf(schema: Mapping[str, Any] | bool) -> str:
    """Return a GBNF grammar (root rule ``root``) whose texts are JSON values valid for ``schema``.

    Raises GrammarError for a schema that is invalid or uses something unsupported; the
    message names the JSON pointer of the place, e.g.
    "schema at /properties/age: `minimum` must be a number, got 'x'".
    """
    return _Converter(schema).grammar()


def _error(ptr: str, message: str) -> GrammarError:
    """A GrammarError naming the schema location ``ptr`` (a JSON pointer, '' for the root)."""
    return GrammarError(f"schema at {ptr or 'root'}: {message}")


def _show(value: Any) -> str:
    """A short repr of a user-supplied value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pointer(ptr: str, *tokens: str | int) -> str:
    """``ptr`` extended by ``tokens``, escaped as JSON pointer reference tokens."""
    for token in tokens:
        ptr += "/" + str(token).replace("~", "~0").replace("/", "~1")
    return ptr


def _json_text(value: Any, ptr: str, keyword: str) -> str:
    """The compact JSON text of ``value`` (an ``enum``/``const`` value or a property name)."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _error(ptr, f"`{keyword}` value {_show(value)} is not JSON: {exc}") from None
    # A lone surrogate cannot be written as UTF-8: spell it as a JSON escape.
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)


def _value_tokens(value: Any, ptr: str, keyword: str) -> str:
    """GBNF for exactly the JSON value ``value``, with ``ws`` allowed between its tokens."""
    if isinstance(value, Mapping):
        members = [
            f"{gbnf_literal(_json_text(key, ptr, keyword))} ws "
            f'":" ws {_value_tokens(item, ptr, keyword)} ws'
            for key, item in value.items()
        ]
        return join('"{" ws', ' "," ws '.join(members), '"}"')
    if isinstance(value, (list, tuple)):
        items = [f"{_value_tokens(item, ptr, keyword)} ws" for item in value]
        return join('"[" ws', ' "," ws '.join(items), '"]"')
    return gbnf_literal(_json_text(value, ptr, keyword))


def _matches_type(value: Any, type_name: str) -> bool:
    """Whether a JSON value is of the JSON Schema type ``type_name``."""
    if type_name == "null":
        return value is None
    if type_name == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if type_name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if type_name == "number":
        return isinstance(value, (int, float))
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "array":
        return isinstance(value, (list, tuple))
    return isinstance(value, Mapping)


# -- the converter -----------------------------------------------------------------------


class _Converter:
    """Builds the rules of one grammar from one schema document."""

    def __init__(self, root: Any) -> None:
        self._root = root
        self._rules: dict[str, str] = {"root": ""}  # name -> body, in output order
        self._names_by_body: dict[str, str] = {}
        self._ref_names: dict[str, str] = {"": "root"}  # JSON pointer -> rule name
        self._unguarded: list[str] = [""]  # refs entered with no token consumed since

    def grammar(self) -> str:
        """The whole grammar text."""
        self._rules["root"] = self._body(self._root, "", "root")
        return "".join(f"{name} ::= {body}\n" for name, body in self._rules.items())

    # rules

    def _use(self, name: str) -> str:
        """Add the primitive rule ``name`` (and what it needs); return its name."""
        if name not in self._rules:
            body, needs = _PRIMITIVES[name]
            self._rules[name] = body
            for need in needs:
                self._use(need)
        return name

    def _rule(self, hint: str, body: str) -> str:
        """A rule with ``body`` (reused when one exists), named after ``hint``; its name."""
        if _IDENTIFIER.fullmatch(body):
            return body
        if body not in self._names_by_body:
            name = self._fresh_name(hint)
            self._rules[name] = body
            self._names_by_body[body] = name
        return self._names_by_body[body]

    def _fresh_name(self, hint: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-")[:48].strip("-") or "rule"
        name, counter = base, 1
        while name in self._rules or name in _PRIMITIVES:
            counter += 1
            name = f"{base}-{counter}"
        return name

    @staticmethod
    def _child_hint(hint: str, suffix: str) -> str:
        return suffix if hint == "root" else f"{hint}-{suffix}"

    @contextmanager
    def _consuming(self) -> Iterator[None]:
        """Marks that a token ('{' or '[') is consumed before what is visited inside."""
        saved, self._unguarded = self._unguarded, []
        try:
            yield
        finally:
            self._unguarded = saved

    def _atom(self, schema: Any, ptr: str, hint: str) -> str:
        """The name of a rule for ``schema``."""
        return self._rule(hint, self._body(schema, ptr, hint))

    # schemas

    def _body(self, schema: Any, ptr: str, hint: str) -> str:
        """A GBNF rule body for the values ``schema`` accepts."""
        if schema is True:
            return self._use("value")
        if schema is False:
            raise _error(ptr, "the schema is `false`, so no value can match it")
        if not isinstance(schema, Mapping):
            raise _error(ptr, f"a schema must be an object or a boolean, got {_show(schema)}")
        for keyword in _UNSUPPORTED_KEYWORDS:
            if keyword in schema:
                raise _error(ptr, f"`{keyword}` is not supported")
        if schema.get("uniqueItems", False) is not False:
            raise _error(ptr, "`uniqueItems` is only supported as false")
        constraining = [key for key in schema if key in _CONSTRAINING_KEYWORDS]
        if "allOf" in schema or ("$ref" in schema and len(constraining) > 1):
            members = self._all_of_members(schema, ptr)
            if not members:
                return self._use("value")
            if len(members) == 1:
                return self._body(members[0][0], members[0][1], hint)
            return self._body(self._merge_objects(members, ptr), ptr, hint)
        if "$ref" in schema:
            return self._ref(schema["$ref"], ptr)
        if "anyOf" in schema or "oneOf" in schema:
            return self._alternatives(schema, constraining, ptr, hint)
        if "const" in schema or "enum" in schema:
            return self._literals(schema, ptr)
        types = self._types(schema, ptr)
        bodies = [self._typed_body(schema, type_name, ptr, hint) for type_name in types]
        if not bodies:
            return self._use("value")
        if len(bodies) == 1:
            return bodies[0]
        return " | ".join(
            self._rule(self._child_hint(hint, t), b) for t, b in zip(types, bodies, strict=True)
        )

    def _types(self, schema: Mapping[str, Any], ptr: str) -> list[str]:
        """The types to emit: ``type`` as a list, or inferred from the keywords present."""
        declared = schema.get("type")
        if declared is None:
            inferred = {
                "object": _OBJECT_KEYWORDS,
                "array": _ARRAY_KEYWORDS,
                "string": _STRING_KEYWORDS,
                "number": _NUMBER_KEYWORDS,
            }
            return [t for t, keywords in inferred.items() if any(k in schema for k in keywords)]
        names = [declared] if isinstance(declared, str) else declared
        if (
            not isinstance(names, list)
            or not names
            or any(name not in _TYPES for name in names)
            or len(set(names)) != len(names)
        ):
            allowed = ", ".join(repr(t) for t in _TYPES)
            raise _error(
                ptr, f"`type` must be one of {allowed} or a list of them, got {_show(declared)}"
            )
        return names

    def _typed_body(self, schema: Mapping[str, Any], type_name: str, ptr: str, hint: str) -> str:
        if type_name == "object":
            return self._object_body(schema, ptr, hint)
        if type_name == "array":
            return self._array_body(schema, ptr, hint)
        if type_name == "string":
            return self._string_body(schema, ptr)
        if type_name in ("number", "integer"):
            return self._number_body(schema, ptr, integer=type_name == "integer")
        return self._use(type_name)  # boolean, null

    def _ref(self, ref: Any, ptr: str) -> str:
        """The rule for a local ``$ref``, made once per target and usable recursively."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _error(
                ptr, f"`$ref` must be a local reference such as '#/$defs/Name', got {_show(ref)}"
            )
        pointer = unquote(ref[1:])
        if pointer in self._ref_names:
            if pointer in self._unguarded:
                raise _error(
                    ptr,
                    f"`$ref` {ref!r} refers back to an enclosing schema with no object or "
                    "array in between, which describes no finite value",
                )
            return self._ref_names[pointer]
        target = self._resolve(ref, ptr)
        name = self._fresh_name(pointer.rsplit("/", 1)[-1] or "root")
        self._rules[name] = ""  # reserved until the body is known
        self._ref_names[pointer] = name
        self._unguarded.append(pointer)
        try:
            self._rules[name] = self._body(target, pointer, name)
        finally:
            self._unguarded.pop()
        return name

    def _resolve(self, ref: str, ptr: str) -> Any:
        """The schema a local ``$ref`` points at."""
        pointer = unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            raise _error(ptr, f"`$ref` {ref!r} is not a JSON pointer such as '#/$defs/Name'")
        node: Any = self._root
        for token in pointer.split("/")[1:] if pointer else []:
            key = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise _error(ptr, f"`$ref` {ref!r} does not resolve: no {key!r} there")
        return node

    def _alternatives(
        self, schema: Mapping[str, Any], constraining: list[str], ptr: str, hint: str
    ) -> str:
        keyword = "anyOf" if "anyOf" in schema else "oneOf"
        others = [key for key in constraining if key != keyword]
        if others:
            raise _error(
                ptr,
                f"`{keyword}` beside {', '.join(f'`{k}`' for k in others)} is not supported; "
                f"move those keywords into each alternative",
            )
        branches = schema[keyword]
        if not isinstance(branches, list) or not branches:
            raise _error(ptr, f"`{keyword}` must be a non-empty list of schemas")
        names = []
        for index, branch in enumerate(branches):
            if branch is not False:
                branch_hint = self._child_hint(hint, str(index))
                names.append(self._atom(branch, _pointer(ptr, keyword, index), branch_hint))
        if not names:
            raise _error(ptr, f"every alternative of `{keyword}` is `false`")
        return " | ".join(dict.fromkeys(names))

    def _literals(self, schema: Mapping[str, Any], ptr: str) -> str:
        """Alternatives for the values ``enum``/``const`` allow, filtered by ``type``."""
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise _error(ptr, f"`enum` must be a non-empty list, got {_show(values)}")
        if "const" in schema:
            const = schema["const"]
            if "enum" not in schema:
                values = [const]
            else:  # JSON equality: true is not 1
                values = [v for v in values if v == const and type(v) is type(const)]
        if "type" in schema:
            types = self._types(schema, ptr)
            values = [v for v in values if any(_matches_type(v, t) for t in types)]
        if not values:
            raise _error(ptr, "no value of `enum`/`const` satisfies `type` and `const`")
        keyword = "enum" if "enum" in schema else "const"
        self._use("ws")
        alternatives = dict.fromkeys(_value_tokens(v, ptr, keyword) for v in values)
        return join(group(list(alternatives)), "ws")

    def _count(self, schema: Mapping[str, Any], keyword: str, ptr: str) -> int | None:
        """A non-negative integer keyword such as ``minItems``, or None when absent."""
        value = schema.get(keyword)
        if value is None:
            return None
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise _error(ptr, f"`{keyword}` must be a non-negative integer, got {_show(value)}")
        if value < 0:
            raise _error(ptr, f"`{keyword}` must be a non-negative integer, got {_show(value)}")
        return int(value)

    # objects

    def _object_body(self, schema: Mapping[str, Any], ptr: str, hint: str) -> str:
        properties = schema.get("properties", {})
        if not isinstance(properties, Mapping):
            raise _error(ptr, f"`properties` must be an object, got {_show(properties)}")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise _error(ptr, f"`required` must be a list of strings, got {_show(required)}")
        additional = schema.get("additionalProperties")
        if additional is not None and not isinstance(additional, (bool, Mapping)):
            raise _error(
                ptr,
                f"`additionalProperties` must be a boolean or a schema, got {_show(additional)}",
            )
        if not properties and not required and (additional is None or additional is True):
            return self._use("object")
        self._use("ws")
        with self._consuming():
            members: list[tuple[str, bool]] = []  # (key-value rule, required)
            for name, subschema in properties.items():
                if subschema is False and name not in required:
                    continue  # the property must be absent
                sub_ptr = _pointer(ptr, "properties", name)
                members.append((self._member(name, subschema, sub_ptr, hint), name in required))
            for name in dict.fromkeys(required):
                if name in properties:
                    continue
                if additional is False:
                    raise _error(
                        ptr,
                        f"`required` names {name!r}, which `properties` lacks and "
                        "`additionalProperties: false` forbids",
                    )
                member_schema = True if additional is None else additional
                members.append((self._member(name, member_schema, ptr, hint), True))
            extra = None
            if additional is True or isinstance(additional, Mapping):
                key = self._other_key([*properties, *required])
                value = self._atom(
                    additional,
                    _pointer(ptr, "additionalProperties"),
                    self._child_hint(hint, "additional"),
                )
                extra = self._rule(self._child_hint(hint, "additional-kv"), f'{key} ":" ws {value}')
        return join('"{" ws', self._members_sequence(members, extra), '"}" ws')

    def _member(self, name: str, subschema: Any, ptr: str, hint: str) -> str:
        """The rule for ``"name": value`` of one property."""
        key = gbnf_literal(_json_text(name, ptr, "properties"))
        self._use("ws")
        value = self._atom(subschema, ptr, self._child_hint(hint, name))
        return self._rule(self._child_hint(hint, f"{name}-kv"), f'{key} ws ":" ws {value}')

    @staticmethod
    def _members_sequence(members: list[tuple[str, bool]], extra: str | None) -> str:
        """Members in order joined by commas: required ones always, others optionally,
        then any number of ``extra`` members."""

        def after(start: int) -> str:  # members from ``start`` on, each after a comma
            parts = [
                f'"," ws {rule}' if needed else f'( "," ws {rule} )?'
                for rule, needed in members[start:]
            ]
            return join(*parts, f'( "," ws {extra} )*' if extra else "")

        firsts = []
        for index, (rule, needed) in enumerate(members):
            firsts.append(join(rule, after(index + 1)))
            if needed:
                return group(firsts)
        if extra:
            firsts.append(f'{extra} ( "," ws {extra} )*')
        return "( " + " | ".join(firsts) + " )?" if firsts else ""

    def _other_key(self, declared: list[str]) -> str:
        """A key string (with ``ws``) that is none of the ``declared`` property names."""
        if not declared:
            return self._use("string")
        self._use("ws")
        raw = self._use("raw-char")
        trie: dict[str, Any] = {}
        for name in declared:
            if all(ord(ch) not in JSON_SPECIALS and ord(ch) != 0x7F for ch in name):
                node = trie
                for ch in name:
                    node = node.setdefault(ch, {})
                node[""] = {}  # end marker

        def not_in(node: dict[str, Any]) -> str:  # suffixes that leave the trie
            alternatives = [
                join(gbnf_literal(ch), not_in(child)) for ch, child in node.items() if ch
            ]
            stop = "".join(class_char(ord(ch)) for ch in node if ch)
            alternatives.append(f'[^"\\\\\\x00-\\x1F\\x7F{stop}] {raw}*')
            group = "( " + " | ".join(alternatives) + " )"
            return group if "" in node else group + "?"

        return self._rule("other-key", f'"\\"" {not_in(trie)} "\\"" ws')

    # arrays

    def _array_body(self, schema: Mapping[str, Any], ptr: str, hint: str) -> str:
        prefix_keyword, tail_keyword = "prefixItems", "items"
        prefix = schema.get("prefixItems", [])
        tail = schema.get("items")
        if isinstance(tail, list):  # draft 7 and earlier: tuple form
            prefix_keyword, tail_keyword = "items", "additionalItems"
            prefix, tail = tail, schema.get("additionalItems")
        if not isinstance(prefix, list):
            raise _error(ptr, f"`{prefix_keyword}` must be a list of schemas, got {_show(prefix)}")
        low = self._count(schema, "minItems", ptr) or 0
        high = self._count(schema, "maxItems", ptr)
        if tail is None and prefix:
            tail = False  # a tuple without its tail described: write the listed items only
        if not prefix and (tail is None or tail is True) and low == 0 and high is None:
            return self._use("array")
        self._use("ws")
        for index, item in enumerate(prefix):
            if item is False:  # no array reaches this position
                high = index if high is None else min(index, high)
                break
        if tail is False:
            high = min(len(prefix), high if high is not None else len(prefix))
        if high is not None and low > high:
            raise _error(ptr, f"no array satisfies `minItems` {low} with at most {high} items")
        with self._consuming():
            elements = [
                self._atom(
                    prefix[i], _pointer(ptr, prefix_keyword, i), self._child_hint(hint, str(i))
                )
                for i in range(len(prefix) if high is None else min(len(prefix), high))
            ]
            tail_rule = None
            if tail is not False and (high is None or high > len(prefix)):
                tail_ptr = _pointer(ptr, tail_keyword)
                tail_rule = self._atom(
                    True if tail is None else tail, tail_ptr, self._child_hint(hint, "item")
                )

        def content(position: int) -> str:  # the elements from ``position`` on
            comma = '"," ws ' if position else ""
            if position < len(elements):
                text = join(comma + elements[position], content(position + 1))
                return text if position < low else f"( {text} )?"
            if tail_rule is None:
                return ""
            needed = max(low - position, 0)
            most = None if high is None else high - position
            if position == 0:
                text = join(
                    tail_rule,
                    repeat(
                        f'( "," ws {tail_rule} )',
                        max(needed - 1, 0),
                        None if most is None else most - 1,
                    ),
                )
                return text if needed else f"( {text} )?"
            return repeat(f'( "," ws {tail_rule} )', needed, most)

        return join('"[" ws', content(0), '"]" ws')

    # strings

    def _string_body(self, schema: Mapping[str, Any], ptr: str) -> str:
        low = self._count(schema, "minLength", ptr) or 0
        high = self._count(schema, "maxLength", ptr)
        pattern = schema.get("pattern")
        string_format = schema.get("format")
        lengths = "minLength" in schema or "maxLength" in schema
        if string_format in _STRING_FORMATS:
            if pattern is not None or lengths:
                raise _error(
                    ptr, f"`format` {string_format!r} cannot be combined with a pattern or length"
                )
            return join(r'"\""', self._use(string_format), r'"\""', self._use("ws"))
        if pattern is not None:
            if not isinstance(pattern, str):
                raise _error(ptr, f"`pattern` must be a string, got {_show(pattern)}")
            if lengths:
                raise _error(ptr, "`pattern` cannot be combined with `minLength`/`maxLength`")
            where = f"schema at {ptr or 'root'}: `pattern` {_show(pattern)}"
            content = pattern_content(pattern, where)
            if "char*" in content:  # the pattern is not anchored at both ends
                self._use("char")
            return join(r'"\""', content, r'"\""', self._use("ws"))
        if high is not None and low > high:
            raise _error(ptr, f"`minLength` {low} is greater than `maxLength` {high}")
        if low == 0 and high is None:
            return self._use("string")
        chars = repeat(self._use("char"), low, high)
        return join(r'"\""', chars, r'"\""', self._use("ws"))

    # numbers

    def _number_body(self, schema: Mapping[str, Any], ptr: str, integer: bool) -> str:
        low, high = self._bounds(schema, ptr)
        if low is None and high is None:
            return self._use("integer" if integer else "number")
        if integer:
            low_int = (
                None if low is None else math.floor(low[0]) + 1 if low[1] else math.ceil(low[0])
            )
            high_int = (
                None if high is None else math.ceil(high[0]) - 1 if high[1] else math.floor(high[0])
            )
            if low_int is not None and high_int is not None and low_int > high_int:
                raise _error(ptr, "no integer lies between the minimum and maximum")
            return join(integer_range(low_int, high_int), self._use("ws"))
        whole: list[Bound | None] = []
        for keyword, bound in (("minimum", low), ("maximum", high)):
            if bound is not None and not float(bound[0]).is_integer():
                raise _error(
                    ptr,
                    f"a {keyword} of {bound[0]!r} for `number` is not supported; only whole-number "
                    "bounds are (use them, or `integer`)",
                )
            whole.append(None if bound is None else (int(bound[0]), bound[1]))
        if (
            low is not None
            and high is not None
            and (low[0] > high[0] or (low[0] == high[0] and (low[1] or high[1])))
        ):
            raise _error(ptr, "no number lies between the minimum and maximum")
        body = join(decimal_range(whole[0], whole[1]), self._use("ws"))
        for need in ("fraction", "fraction-nonzero", "fraction-zero"):
            if re.search(rf"(?<![\w-]){need}(?![\w-])", body):
                self._use(need)
        return body

    def _bounds(
        self, schema: Mapping[str, Any], ptr: str
    ) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
        """The tightest (value, exclusive) lower and upper bounds, draft-4 booleans included."""
        found: dict[str, float] = {}
        for keyword in _NUMBER_KEYWORDS:
            value = schema.get(keyword)
            if value is None or (keyword.startswith("exclusive") and isinstance(value, bool)):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _error(ptr, f"`{keyword}` must be a number, got {_show(value)}")
            if not math.isfinite(value):
                raise _error(ptr, f"`{keyword}` must be finite, got {_show(value)}")
            found[keyword] = value
        result: list[tuple[float, bool] | None] = []
        for inclusive, exclusive, pick in (
            ("minimum", "exclusiveMinimum", max),
            ("maximum", "exclusiveMaximum", min),
        ):
            candidates = []
            if inclusive in found:
                candidates.append((found[inclusive], schema.get(exclusive) is True))
            if exclusive in found:
                candidates.append((found[exclusive], True))
            if not candidates:
                result.append(None)
                continue
            value = pick(v for v, _ in candidates)
            result.append((value, any(v == value and e for v, e in candidates)))
        return result[0], result[1]

    # allOf

    def _all_of_members(self, schema: Mapping[str, Any], ptr: str) -> list[tuple[Any, str]]:
        """The constraining members of ``allOf`` (and of a ``$ref`` with siblings)."""
        members: list[tuple[Any, str]] = []
        branches = schema.get("allOf", [])
        if not isinstance(branches, list) or ("allOf" in schema and not branches):
            raise _error(ptr, "`allOf` must be a non-empty list of schemas")
        for index, branch in enumerate(branches):
            members.append((branch, _pointer(ptr, "allOf", index)))
        if "$ref" in schema:
            members.append(({"$ref": schema["$ref"]}, ptr))
        rest = {k: v for k, v in schema.items() if k not in ("allOf", "$ref")}
        members.append((rest, ptr))
        return [
            (member, member_ptr)
            for member, member_ptr in members
            if member is not True
            and not (
                isinstance(member, Mapping) and not any(k in _CONSTRAINING_KEYWORDS for k in member)
            )
        ]

    def _flatten(self, schema: Any, ptr: str, out: list[tuple[Any, str]], depth: int) -> None:
        """Object schemas that ``schema`` is the conjunction of, refs and nested allOf opened."""
        if depth > 32:
            raise _error(ptr, "`allOf`/`$ref` nesting is too deep or circular")
        if schema is True:
            return
        if not isinstance(schema, Mapping):
            self._body(schema, ptr, "")  # raises the matching error
        for member, member_ptr in self._all_of_members(schema, ptr):
            if member is False or not isinstance(member, Mapping):
                self._body(member, member_ptr, "")  # raises the matching error
            constraining = [k for k in member if k in _CONSTRAINING_KEYWORDS]
            if "allOf" in member or ("$ref" in member and len(constraining) > 1):
                self._flatten(member, member_ptr, out, depth + 1)
            elif "$ref" in member:
                ref = member["$ref"]
                if not isinstance(ref, str):
                    self._ref(ref, member_ptr)  # raises the matching error
                target = self._resolve(ref, member_ptr)
                self._flatten(target, unquote(ref[1:]), out, depth + 1)
            else:
                out.append((member, member_ptr))

    def _merge_objects(self, members: list[tuple[Any, str]], ptr: str) -> dict[str, Any]:
        """One object schema equivalent to (or, for extra keys, stricter than) all members."""
        flat: list[tuple[Any, str]] = []
        for member, member_ptr in members:
            self._flatten(member, member_ptr, flat, 0)
        properties: dict[str, Any] = {}
        required: list[str] = []
        allowed: set[str] | None = None
        additional: bool | None = None
        for member, member_ptr in flat:
            if member.get("type", "object") != "object":
                raise _error(member_ptr, "`allOf` can only combine object schemas")
            for keyword in member:
                if keyword in _CONSTRAINING_KEYWORDS and keyword not in (
                    "type",
                    *_OBJECT_KEYWORDS,
                ):
                    raise _error(
                        member_ptr, f"`allOf` can only combine object schemas, not `{keyword}`"
                    )
            member_properties = member.get("properties", {})
            member_required = member.get("required", [])
            if not isinstance(member_properties, Mapping) or not isinstance(member_required, list):
                self._object_body(member, member_ptr, "")  # raises the matching error
            for name, subschema in member_properties.items():
                if name in properties and properties[name] != subschema:
                    properties[name] = {"allOf": [properties[name], subschema]}
                else:
                    properties[name] = subschema
            required.extend(r for r in member_required if r not in required)
            member_additional = member.get("additionalProperties")
            if isinstance(member_additional, Mapping):
                raise _error(member_ptr, "`additionalProperties` inside `allOf` must be a boolean")
            if member_additional is False:
                names = set(member_properties)
                allowed = names if allowed is None else allowed & names
            elif member_additional is True:
                additional = True
        merged: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
        if allowed is not None:
            for name in required:
                if name not in allowed:
                    raise _error(
                        ptr,
                        f"`allOf` requires {name!r}, which `additionalProperties: false` forbids",
                    )
            merged["properties"] = {k: v for k, v in properties.items() if k in allowed}
            merged["additionalProperties"] = False
        elif additional:
            merged["additionalProperties"] = True
        return merged


JSON_OBJECT_GRAMMAR: str = json_schema_to_gbnf({"type": "object"})
"""GBNF whose root is any JSON object: what Ollama's ``format="json"`` constrains output to."""
