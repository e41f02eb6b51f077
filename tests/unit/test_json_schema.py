"""JSON Schema to GBNF: what the grammars accept, checked with a small GBNF interpreter.

Every schema in CASES comes with documents that validate (the grammar must accept them,
written compactly and indented) and documents that do not (the grammar must reject them),
and random texts drawn from each grammar must parse and validate with ``jsonschema``.
"""

from __future__ import annotations

import datetime
import json
import random
import re

import jsonschema
import pytest
from gbnf_matcher import Grammar

from llamahost.engine.json_schema import JSON_OBJECT_GRAMMAR, json_schema_to_gbnf
from llamahost.errors import GrammarError

# jsonschema checks date-time and time only with an optional package; check them here.
FORMATS = jsonschema.FormatChecker()
_RFC3339_TIME = r"\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(rf"\d{{4}}-\d{{2}}-\d{{2}}[Tt]{_RFC3339_TIME}", value):
        return False
    datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


@FORMATS.checks("time", raises=ValueError)
def _is_time(value: object) -> bool:
    return not isinstance(value, str) or _is_date_time("1970-01-01T" + value)


def is_valid(document: object, schema: object) -> bool:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = cls(schema, format_checker=FORMATS)
    return validator.is_valid(document)


def texts(document: object) -> list[str]:
    """The document written compactly and indented (both must be accepted)."""
    return [
        json.dumps(document, ensure_ascii=False, separators=(",", ":")),
        json.dumps(document, ensure_ascii=False, indent=2),
    ]


NODE_DEFS = {
    "Node": {
        "type": "object",
        "properties": {
            "value": {"type": "integer"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
        },
        "required": ["value"],
        "additionalProperties": False,
    }
}
INT_LIST = {"type": "array", "items": {"type": "integer"}}

# (id, schema, documents that validate, documents that do not)
CASES: list[tuple[str, object, list[object], list[object]]] = [
    (
        "person",
        {
            "type": "object",
            "title": "Person",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 5},
                "age": {"type": "integer", "minimum": 0, "maximum": 150},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "email": {"type": "string", "description": "where to write"},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        [
            {"name": "Al", "age": 0},
            {"name": "Alice", "age": 150, "tags": ["x"]},
            {"name": "Bo", "age": 30, "tags": [], "email": "b@x"},
            {"name": "Cy", "age": 7, "email": ""},
        ],
        [
            {"name": "Al"},
            {"name": "", "age": 1},
            {"name": "Alice!", "age": 1},
            {"name": "Al", "age": 151},
            {"name": "Al", "age": -1},
            {"name": "Al", "age": 1.5},
            {"name": "Al", "age": 1, "tags": ["a", "b", "c", "d"]},
            {"name": "Al", "age": 1, "extra": 1},
            ["Al", 1],
        ],
    ),
    (
        "enum-any-values",
        {
            "enum": [
                "red",
                'say "hi"',
                "back\\slash",
                "ünï",
                "line\nbreak",
                3,
                None,
                True,
                [1, "a"],
                {"k": "v"},
            ]
        },
        [
            "red",
            'say "hi"',
            "back\\slash",
            "ünï",
            "line\nbreak",
            3,
            None,
            True,
            [1, "a"],
            {"k": "v"},
        ],
        ["blue", "say hi", 4, False, [1], {"k": "w"}],
    ),
    ("const", {"const": {"a": [1, 2]}}, [{"a": [1, 2]}], [{"a": [1]}, {}, None]),
    ("enum-filtered-by-type", {"type": "string", "enum": ["a", 1]}, ["a"], [1, "b"]),
    (
        "escaped-property-names",
        {
            "type": "object",
            "properties": {
                'we"ird\\key': {"type": "boolean"},
                "new\nline": {"type": "null"},
                "ünicode key/with slash": {"type": "integer"},
            },
            "required": ['we"ird\\key', "new\nline", "ünicode key/with slash"],
        },
        [{'we"ird\\key': True, "new\nline": None, "ünicode key/with slash": -3}],
        [
            {'we"ird\\key': True, "new\nline": None},
            {'we"ird\\key': 1, "new\nline": None, "ünicode key/with slash": 1},
        ],
    ),
    (
        "recursive-defs",
        {"$defs": NODE_DEFS, "$ref": "#/$defs/Node"},
        [
            {"value": 1},
            {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}, {"value": 4}]},
        ],
        [{"value": "x"}, {"value": 1, "children": [{"children": []}]}, {"children": []}],
    ),
    (
        "recursive-definitions-anyof",
        {
            "definitions": {
                "list": {
                    "anyOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "properties": {
                                "head": {"type": "integer"},
                                "tail": {"$ref": "#/definitions/list"},
                            },
                            "required": ["head", "tail"],
                            "additionalProperties": False,
                        },
                    ]
                }
            },
            "$ref": "#/definitions/list",
        },
        [None, {"head": 1, "tail": None}, {"head": 1, "tail": {"head": 2, "tail": None}}],
        [{"head": 1}, {"head": 1, "tail": 2}, 0],
    ),
    (
        "array-bounds",
        {**INT_LIST, "minItems": 2, "maxItems": 4},
        [[1, 2], [1, 2, 3], [-1, 0, 1, 2]],
        [[], [1], [1, 2, 3, 4, 5], [1, "a"], {"a": 1}],
    ),
    ("array-min-only", {**INT_LIST, "minItems": 1}, [[1], [1, 2, 3, 4, 5, 6]], [[], ["x"]]),
    (
        "prefix-items",
        {
            "type": "array",
            "prefixItems": [{"type": "string"}, {"type": "number"}],
            "items": {"type": "boolean"},
            "minItems": 1,
            "maxItems": 3,
        },
        [["a"], ["a", 1.5], ["a", 2, True]],
        [[], [1], ["a", "b"], ["a", 1, True, False], ["a", 1, 2]],
    ),
    (
        "draft7-tuple-items",
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "array",
            "items": [{"type": "integer"}, {"type": "string"}],
            "additionalItems": False,
        },
        [[], [1], [1, "a"]],
        [["a"], [1, 2], [1, "a", "b"]],
    ),
    (
        "anchored-pattern",
        {"type": "string", "pattern": r"^[A-Z]{2}-\d{3,4}$"},
        ["AB-123", "XY-1234"],
        ["ab-123", "AB-12", "AB-12345", "xAB-123", 12],
    ),
    (
        "unanchored-pattern",
        {"type": "string", "pattern": "cat|dog"},
        ["cat", "hotdog!", "a cat"],
        ["bird", "ca t"],
    ),
    (
        "pattern-json-specials",
        {"type": "string", "pattern": '^[\\"\\\\a-c]+\\.(x|\\n)?$'},
        ['a"b\\c.', "c.x", "a.\n"],
        ["d.", "a.y", "a"],
    ),
    (
        "pattern-dot-negated-class",
        {"type": "string", "pattern": "^.[^0-9]$"},
        ["a!", '"x', "é\\"],
        ["a1", "abc", "\na"],
    ),
    (
        # Python's \\d also matches non-ASCII digits such as '٣', so their negations must not.
        "pattern-negated-shorthands",
        {"type": "string", "pattern": r"^\D[^\d]\W?\S*$"},
        ["ab", "!?", "a-b", 'x"y'],
        ["a1", "1a", "a٣", "٣a", "a٣b", "ab-\u00a0"],
    ),
    (
        "pattern-groups-quantifiers",
        {"type": "string", "pattern": r"^(?:ab|c){2}x*?(?P<tail>[xyz]{1,2})?\w\s?$"},
        ["abcq", "ccxxx_", "ababz9 "],
        ["abq", "abc", "cc??"],
    ),
    (
        "string-lengths",
        {"type": "string", "minLength": 2, "maxLength": 3},
        ["é😀", 'a"b', "\\\n"],
        ["a", "abcd", "😀"],
    ),
    (
        "format-date",
        {"type": "string", "format": "date"},
        ["2024-02-29", "2000-02-29", "1999-12-31", "0004-02-29"],
        ["1900-02-29", "2023-02-29", "2024-13-01", "2024-04-31", "0000-01-01"],
    ),
    (
        "format-time",
        {"type": "string", "format": "time"},
        ["23:59:59Z", "00:00:00.5+05:30"],
        ["24:00:00Z", "12:00:00", "12:60:00Z"],
    ),
    (
        "format-date-time",
        {"type": "string", "format": "date-time"},
        ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123-01:00"],
        ["2024-01-02 03:04:05Z", "2024-01-02T03:04Z"],
    ),
    (
        "format-uuid",
        {"type": "string", "format": "uuid"},
        ["123e4567-e89b-12d3-a456-426614174000"],
        ["123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400"],
    ),
    (
        "number-range",
        {"type": "number", "minimum": -5, "exclusiveMaximum": 10},
        [-5, -4.5, -0.25, 0, 3, 9.99, -5.0],
        [-5.5, 10, 10.5, -6, 100],
    ),
    (
        "number-single-value",
        {"type": "number", "minimum": 2, "maximum": 2},
        [2, 2.0],
        [2.5, 1.99, 3],
    ),
    (
        "number-exclusive-zero",
        {"type": "number", "exclusiveMinimum": 0},
        [0.001, 1, 12.5],
        [0, -0.5, -3],
    ),
    (
        "number-draft4-exclusive",
        {"type": "number", "maximum": 1, "exclusiveMaximum": True},
        [0.5, -7],
        [1, 1.5],
    ),
    ("type-list", {"type": ["string", "null"], "maxLength": 2}, ["ab", None], ["abc", 1]),
    ("one-of", {"oneOf": [{"type": "integer"}, {"type": "boolean"}]}, [1, True], ["1", None, 1.5]),
    (
        "all-of-objects",
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "integer"}}, "required": ["b"]},
            ]
        },
        [{"a": "x", "b": 1}],
        [{"a": "x"}, {"b": 1}, {"a": 1, "b": 1}],
    ),
    (
        "ref-with-siblings",
        {
            "$defs": {
                "base": {
                    "type": "object",
                    "properties": {"id": {"type": "integer"}},
                    "required": ["id"],
                }
            },
            "$ref": "#/$defs/base",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
        [{"id": 1, "name": "x"}],
        [{"id": 1}, {"name": "x"}],
    ),
    ("empty-schema", {}, [{"a": [1, "x", None, True, 1.5e3, {}]}, "s", 3, -0.5, []], []),
    ("true-schema", True, [None, [[]], "x"], []),
    (
        "additional-properties-schema",
        {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": {"type": "integer"},
        },
        [{"a": "x", "b": 1}, {"b": 2, "c": 3}, {}, {"ab": 1}],
        [{"a": 1}, {"b": "x"}, {"a": "x", "b": "y"}],
    ),
    ("required-without-properties", {"type": "object", "required": ["x"]}, [{"x": [1]}], [{}, []]),
    (
        "inferred-object",
        {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
        [{"a": 1}],
        [{"a": "s"}],
    ),
    (
        "optional-around-required",
        {
            "type": "object",
            "properties": {
                "a": {"type": "integer"},
                "b": {"type": "integer"},
                "c": {"type": "integer"},
            },
            "required": ["b"],
            "additionalProperties": False,
        },
        [{"b": 1}, {"a": 1, "b": 2}, {"b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}],
        [{"a": 1}, {}, {"a": 1, "c": 3}],
    ),
    (
        "all-optional",
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "additionalProperties": False,
        },
        [{}, {"b": "x"}, {"a": 1, "b": "x"}, {"a": 1}],
        [{"a": "x"}, {"b": 1}, {"c": 1}],
    ),
]

CASE_PARAMS = [pytest.param(schema, good, bad, id=name) for name, schema, good, bad in CASES]


@pytest.mark.parametrize(("schema", "valid", "invalid"), CASE_PARAMS)
def test_grammar_accepts_valid_and_rejects_invalid_documents(schema, valid, invalid):
    grammar = Grammar.parse(json_schema_to_gbnf(schema))
    for document in valid:
        assert is_valid(document, schema), f"test data: {document!r} should be valid"
        for text in texts(document):
            assert grammar.matches(text), f"rejected valid {text!r}"
    for document in invalid:
        assert not is_valid(document, schema), f"test data: {document!r} should be invalid"
        for text in texts(document):
            assert not grammar.matches(text), f"accepted invalid {text!r}"


@pytest.mark.parametrize(("schema", "valid", "invalid"), CASE_PARAMS)
def test_random_outputs_of_the_grammar_validate(schema, valid, invalid):
    grammar = Grammar.parse(json_schema_to_gbnf(schema))
    rng = random.Random(1234)
    for _ in range(25):
        text = grammar.sample(rng)
        document = json.loads(text)
        assert is_valid(document, schema), f"grammar produced invalid {text!r}"


INTEGER_BOUNDS = [
    {"minimum": 0, "maximum": 150},
    {"minimum": -20, "maximum": 35},
    {"minimum": 7, "maximum": 7},
    {"minimum": -105, "maximum": -3},
    {"minimum": 95, "maximum": 1005},
    {"minimum": 123, "maximum": 456},
    {"minimum": -456, "maximum": -123},
    {"minimum": 47, "maximum": 1234},
    {"exclusiveMinimum": -1, "exclusiveMaximum": 100},
    {"minimum": 2.5, "maximum": 9.5},
    {"maximum": 12},
    {"minimum": -12},
    {"exclusiveMinimum": 99},
    {"minimum": 0, "exclusiveMaximum": 10, "maximum": 20},
]


@pytest.mark.parametrize("bounds", INTEGER_BOUNDS, ids=lambda b: json.dumps(b))
def test_integer_bounds_are_exact(bounds):
    schema = {"type": "integer", **bounds}
    grammar = Grammar.parse(json_schema_to_gbnf(schema))
    edges = [b + d for b in bounds.values() for d in (-1, 0, 1) if isinstance(b, int)]
    candidates = [*range(-130, 131), *range(-1300, 1300, 7), *edges, 10**15, -(10**15)]
    for number in candidates:
        assert grammar.matches(str(number)) == is_valid(number, schema), number
    assert not grammar.matches("007")
    assert not grammar.matches("1.0")


def test_generic_json_object_grammar():
    grammar = Grammar.parse(JSON_OBJECT_GRAMMAR)
    for text in [
        '{"a": 1}',
        "{}",
        '{\n  "a": [1, 2.5e-3, "x\\u00e9"],\n  "b": {"c": null}\n}',
        "{} ",
    ]:
        assert grammar.matches(text), text
    for text in ["[1]", '"x"', "1", ' {"a": 1}', '{"a": 1,}', "{'a': 1}", '{"a": 01}']:
        assert not grammar.matches(text), text
    rng = random.Random(7)
    for _ in range(25):
        assert isinstance(json.loads(grammar.sample(rng)), dict)


def test_whitespace_between_tokens_is_bounded():
    grammar = Grammar.parse(JSON_OBJECT_GRAMMAR)
    assert grammar.matches('{"a":\n' + " " * 20 + "1}")
    assert grammar.matches('{"a":\n\t\t1}')
    assert not grammar.matches('{"a":\n' + " " * 21 + "1}")
    assert not grammar.matches('{"a":  1}')
    assert not grammar.matches('{"a":\n\n1}')
    assert re.search(r'^ws ::= \| " " \| "\\n" \[ \\t\]\{0,20\}$', JSON_OBJECT_GRAMMAR, re.M)


def test_string_characters_and_escapes():
    grammar = Grammar.parse(json_schema_to_gbnf({"type": "string"}))
    for text in ['"plain"', r'"\"\\\/\b\f\n\r\t"', r'"\u00e9\uFFFF"', '"é中😀"']:
        assert grammar.matches(text), text
    # Surrogate escapes are refused so that every `char` is exactly one code point.
    for text in ['"a\x01"', '"tab\there"', r'"\x41"', r'"\ud83d\ude00"', r'"\u12"', '"a"b"']:
        assert not grammar.matches(text), text


def test_required_properties_in_declaration_order():
    schema = CASES[0][1]
    grammar = json_schema_to_gbnf(schema)
    root = next(line for line in grammar.splitlines() if line.startswith("root ::="))
    positions = [root.index(f"{name}-kv") for name in ("name", "age", "tags", "email")]
    assert positions == sorted(positions)
    assert re.search(r'name-kv "," ws age-kv \( "," ws tags-kv \)\? \( "," ws email-kv \)\?', root)
    assert not Grammar.parse(grammar).matches('{"age": 1, "name": "Al"}')


def test_enum_literals_and_property_names_are_escaped():
    grammar = json_schema_to_gbnf(CASES[1][1])
    assert r'"\"red\""' in grammar
    assert r'"\"say \\\"hi\\\"\""' in grammar  # JSON text "say \"hi\"" as a GBNF literal
    assert r'"\"line\\nbreak\""' in grammar
    assert r'"{" ws "\"k\"" ws ":" ws "\"v\"" ws "}"' in grammar
    keys = json_schema_to_gbnf(CASES[4][1])
    assert r'"\"we\\\"ird\\\\key\""' in keys


def test_recursive_ref_gets_a_named_rule():
    grammar = json_schema_to_gbnf({"$defs": NODE_DEFS, "$ref": "#/$defs/Node"})
    rules = Grammar.parse(grammar).rules
    assert "Node" in rules
    assert re.search(r"^Node-children ::= .*\bNode\b", grammar, re.M)
    assert grammar.startswith("root ::= Node\n")


def test_root_can_refer_to_itself():
    schema = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    grammar = Grammar.parse(json_schema_to_gbnf(schema))
    assert grammar.matches('{"next": {"next": {}}}')
    assert not grammar.matches('{"next": 1}')


def test_item_counts_become_repetitions():
    grammar = json_schema_to_gbnf({**INT_LIST, "minItems": 2, "maxItems": 4})
    assert '"[" ws integer ( "," ws integer ){1,3} "]" ws' in grammar
    unbounded = json_schema_to_gbnf({**INT_LIST, "minItems": 3})
    assert '( "," ws integer ){2,}' in unbounded
    optional = json_schema_to_gbnf({**INT_LIST, "maxItems": 1})
    assert '"[" ws ( integer )? "]" ws' in optional


def test_rule_names_are_valid_unique_and_identical_rules_shared():
    schema = {
        "type": "object",
        "properties": {
            "first name": {"type": "string", "maxLength": 3},
            "last/name": {"type": "string", "maxLength": 3},
            "string": {"type": "integer", "maximum": 5},
            "ws": {"type": "boolean"},
            "??": {"type": "null"},
        },
    }
    grammar = json_schema_to_gbnf(schema)
    names = [line.split(" ::= ")[0] for line in grammar.splitlines()]
    assert all(re.fullmatch(r"[a-zA-Z0-9-]+", name) for name in names)
    assert len(names) == len(set(names))
    assert grammar.count("char{0,3}") == 1
    parsed = Grammar.parse(grammar)
    assert parsed.matches(
        '{"first name": "abc", "last/name": "de", "string": 5, "ws": true, "??": null}'
    )
    assert not parsed.matches('{"string": 6}')


def test_annotations_are_ignored():
    annotated = {
        "type": "string",
        "title": "T",
        "description": "d",
        "examples": ["x"],
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.com/s",
        "default": "x",
        "$comment": "c",
        "deprecated": False,
        "readOnly": True,
        "format": "email",
    }
    assert json_schema_to_gbnf(annotated) == json_schema_to_gbnf({"type": "string"})


def test_other_keys_never_repeat_a_declared_property():
    schema = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "idx": {"type": "integer"}},
        "additionalProperties": {"type": "string"},
    }
    grammar = Grammar.parse(json_schema_to_gbnf(schema))
    assert grammar.matches('{"id": 1, "i": "s", "idxy": "s", "": "s"}')
    for key in ("id", "idx"):
        assert not grammar.matches(f'{{"{key}": "s"}}')
        assert not grammar.matches(f'{{"id": 1, "{key}": "s"}}')


ERROR_CASES = [
    ({"type": "strin"}, "schema at root: `type` must be one of"),
    (
        {"properties": {"age": {"type": "integer", "minimum": "x"}}},
        "schema at /properties/age: `minimum` must be a number, got 'x'",
    ),
    ({"$ref": "#/$defs/missing"}, "schema at root: `$ref` '#/$defs/missing' does not resolve"),
    (
        {"properties": {"a": {"$ref": "https://example.com/s.json"}}},
        "schema at /properties/a: `$ref` must be a local reference",
    ),
    ([1, 2], "schema at root: a schema must be an object or a boolean, got [1, 2]"),
    ("object", "schema at root: a schema must be an object or a boolean"),
    (False, "schema at root: the schema is `false`"),
    ({"properties": {"a/b": {"type": "bogus"}}}, "schema at /properties/a~1b: `type`"),
    (
        {"type": "string", "pattern": "^(?=a)b$"},
        "schema at root: `pattern` '^(?=a)b$': a lookaround",
    ),
    ({"type": "string", "pattern": r"\bword"}, r"the escape '\b'"),
    ({"type": "string", "pattern": r"(a)\1"}, "a backreference"),
    ({"type": "string", "pattern": "a^b"}, "the anchor '^'"),
    ({"type": "string", "pattern": "[a-"}, "is not a valid regular expression"),
    ({"type": "string", "pattern": "a", "maxLength": 3}, "`pattern` cannot be combined"),
    ({"items": {"not": {"type": "string"}}}, "schema at /items: `not` is not supported"),
    ({"type": "array", "uniqueItems": True}, "`uniqueItems`"),
    ({"type": "number", "minimum": 0.5}, "only whole-number bounds"),
    ({"type": "integer", "minimum": 5, "maximum": 3}, "no integer lies between"),
    ({"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 4}, "no integer lies between"),
    (
        {"type": "string", "minLength": 5, "maxLength": 2},
        "`minLength` 5 is greater than `maxLength` 2",
    ),
    ({"type": "object", "anyOf": [{"required": ["a"]}]}, "`anyOf` beside `type` is not supported"),
    (
        {"allOf": [{"type": "string"}, {"type": "object"}]},
        "schema at /allOf/0: `allOf` can only combine object schemas",
    ),
    (
        {"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}}, "$ref": "#/$defs/a"},
        "schema at /$defs/a/anyOf/0: `$ref` '#/$defs/a' refers back",
    ),
    ({"enum": []}, "`enum` must be a non-empty list"),
    ({"type": "string", "enum": [1, 2]}, "no value of `enum`/`const` satisfies"),
    ({"enum": [float("nan")]}, "`enum` value nan is not JSON"),
    (
        {"properties": {"x": {"type": "array", "minItems": -1}}},
        "schema at /properties/x: `minItems` must be a non-negative integer, got -1",
    ),
    ({"type": "object", "required": ["x"], "additionalProperties": False}, "`required` names 'x'"),
    (
        {"type": "array", "prefixItems": [{}, {}], "items": False, "minItems": 3},
        "no array satisfies `minItems` 3",
    ),
    (
        {"type": "object", "properties": {"a": False}, "required": ["a"]},
        "schema at /properties/a: the schema is `false`",
    ),
]


@pytest.mark.parametrize(("schema", "message"), ERROR_CASES, ids=[m[:40] for _, m in ERROR_CASES])
def test_bad_or_unsupported_schemas_raise_grammar_error_naming_the_place(schema, message):
    with pytest.raises(GrammarError) as caught:
        json_schema_to_gbnf(schema)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    # A failed conversion leaves nothing behind: the next one works.
    assert json_schema_to_gbnf({"type": "boolean"}).startswith("root ::= boolean\n")
