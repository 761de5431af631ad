"""The base of the request bodies that change some fields of a resource (PUT and PATCH)."""

from __future__ import annotations

import msgspec


class MergePatch(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """A JSON merge patch (RFC 7396) of a resource's top-level fields.

    Subclasses declare each field as ``T | msgspec.UnsetType = msgspec.UNSET`` (``| None`` where null clears it):
    an absent field keeps its value, a present one replaces it.
    """

    def __post_init__(self) -> None:
        """Refuse a patch that names no field: it is a client's mistake rather than a change."""
        if all(value is msgspec.UNSET for value in msgspec.structs.astuple(self)):
            fields = ", ".join(self.__struct_encode_fields__)
            raise ValueError(f"give at least one of the fields {fields}")
