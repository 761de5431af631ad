"""JSON Schema 2020-12 checks of workflow schemas and execution inputs; failures name the JSON pointer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from referencing.exceptions import Unresolvable

from flowline.errors import ValidationFailed


def json_pointer(base: str, path: Iterable[str | int]) -> str:
    """``base`` followed by the RFC 6901 pointer of ``path`` (``~`` and ``/`` escaped)."""
    return base + "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def check_schema(schema: Any, pointer: str) -> None:
    """Check that ``schema`` is a valid JSON Schema 2020-12.

    Raises:
        ValidationFailed: it is not; the pointer is ``pointer`` plus the failing place inside the schema.
    """
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        where = json_pointer(pointer, err.absolute_path)
        raise ValidationFailed(f"{where}: not a valid JSON Schema: {err.message}", pointer=where) from err


def check_instance(schema: Any, instance: Any, pointer: str) -> None:
    """Check ``instance`` against a stored (valid) JSON Schema.

    Raises:
        ValidationFailed: it does not match; the pointer is ``pointer`` plus the failing place in the instance.
    """
    try:
        error = best_match(Draft202012Validator(schema).iter_errors(instance))
    except Unresolvable as err:
        raise ValidationFailed(f"the schema of {pointer} has a reference that cannot be resolved: {err}") from err
    except RecursionError as err:
        # A `$ref` cycle that never reaches a keyword (`{"$defs": {"a": {"$ref": "#/$defs/a"}}, ...}`) is a valid
        # schema that no instance can be checked against.
        raise ValidationFailed(f"the schema of {pointer} has references that loop without end") from err
    if error is not None:
        where = json_pointer(pointer, error.absolute_path)
        raise ValidationFailed(f"{where}: {error.message}", pointer=where)
