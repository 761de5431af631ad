"""JSON Schema 2020-12 checks of workflow schemas and execution inputs; failures name the JSON pointer.

Inputs are checked by jsonschema-rs with linear-time regular expressions (Rust's ``regex`` crate): a ``pattern``
such as ``^(a+)+$`` cannot stall a request or an executor however the input is made, as it does with Python's
backtracking ``re``. A schema may refer only to places inside itself: nothing is ever fetched, neither when a
workflow is defined nor when an input is checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import jsonschema_rs
import msgspec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from flowline.errors import ValidationFailed
from flowline.runtime.caches import memoize

_REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")
_DATA_KEYWORDS = ("const", "default", "enum", "examples")
# Checked inputs' validators, by the schema's JSON: a workflow's schema is compiled once, not at every start. At
# most this many, made from at most this much schema JSON (a compiled validator grows with its schema).
_VALIDATORS_CACHED = 256
_VALIDATORS_CACHED_BYTES = 16 * 1024 * 1024


def json_pointer(base: str, path: Iterable[str | int]) -> str:
    """``base`` followed by the RFC 6901 pointer of ``path`` (``~`` and ``/`` escaped)."""
    return base + "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def check_schema(schema: Any, pointer: str) -> None:
    """Check that ``schema`` is a valid JSON Schema 2020-12 that refers only to places inside itself.

    Raises:
        ValidationFailed: it is not; the pointer is ``pointer`` plus the failing place inside the schema.
    """
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        where = json_pointer(pointer, err.absolute_path)
        raise ValidationFailed(f"{where}: not a valid JSON Schema: {err.message}", pointer=where) from err
    for path, reference in _references(schema, ()):
        where = json_pointer(pointer, path)
        if not reference.startswith("#"):
            raise ValidationFailed(
                f"{where}: a schema may refer only to places inside itself ('#/…'), not to {reference!r}",
                pointer=where,
            )
        if _loops(schema, reference):
            raise ValidationFailed(f"{where}: references that loop without end", pointer=where)
    try:
        _validator(msgspec.json.encode(schema))
    except (jsonschema_rs.ValidationError, ValueError) as err:
        # A `pattern` that the linear-time engine does not take (backreferences, look-around), a reference to
        # a place the schema does not have.
        message = str(err).splitlines()[0]
        raise ValidationFailed(f"{pointer}: not a schema Flowline can check inputs against: {message}") from err


def check_instance(schema: Any, instance: Any, pointer: str) -> None:
    """Check ``instance`` against a stored (valid) JSON Schema.

    Raises:
        ValidationFailed: it does not match; the pointer is ``pointer`` plus the failing place in the instance.
    """
    try:
        validator = _validator(msgspec.json.encode(schema))
    except (jsonschema_rs.ValidationError, ValueError) as err:
        raise ValidationFailed(f"the schema of {pointer} cannot be used: {str(err).splitlines()[0]}") from err
    error = next(iter(validator.iter_errors(instance)), None)
    if error is not None:
        where = json_pointer(pointer, error.instance_path)
        raise ValidationFailed(f"{where}: {error.message}", pointer=where)


def _refuse(uri: str) -> Any:
    raise ValueError(f"{uri!r} is outside the schema; Flowline fetches no schemas")


@memoize(max_entries=_VALIDATORS_CACHED, max_bytes=_VALIDATORS_CACHED_BYTES, size_of=len)
def _validator(schema_json: bytes) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(
        msgspec.json.decode(schema_json), retriever=_refuse, pattern_options=jsonschema_rs.RegexOptions()
    )


def _references(node: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every ``$ref`` and ``$dynamicRef`` in a schema, with its path (data keywords hold no references)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _REFERENCE_KEYWORDS and isinstance(value, str):
                yield (*path, key), value
            elif key not in _DATA_KEYWORDS:
                yield from _references(value, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _references(item, (*path, index))


def _loops(schema: Any, reference: str) -> bool:
    """Whether following ``reference`` leads only from reference to reference, back to one already passed.

    Such a schema checks nothing and sends a validator round in circles.
    """
    seen = set()
    while reference not in seen:
        seen.add(reference)
        target = _resolve(schema, reference)
        if not isinstance(target, dict) or not isinstance(target.get("$ref"), str):
            return False
        reference = target["$ref"]
    return True


def _resolve(schema: Any, reference: str) -> Any:
    """The part of ``schema`` that a ``#/…`` reference points at, or None (an anchor's place is not looked up)."""
    if reference != "#" and not reference.startswith("#/"):
        return None
    node = schema
    for token in reference.removeprefix("#").split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node
