"""Workflow use cases: define, list, read, update, delete, execute."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec
from cryptography.fernet import MultiFernet
from flowline.db.audit import Actor, field_changes, record_audit
from flowline.db.packs import read_pack
from flowline.db.workflows import (
    WorkflowFilters,
    WorkflowSort,
    add_workflow_version,
    count_workflows,
    create_workflow,
    delete_workflow,
    list_workflow_versions,
    list_workflows,
    read_version_document,
    read_version_id,
    read_workflow,
    update_workflow_metadata,
)
from flowline.domain.agents import check_secret_value, open_secret, seal_secret
from flowline.domain.definitions import (
    SECRET_MASK,
    WorkflowDefinition,
    mask_definition,
    request_secrets,
    validate_definition,
)
from flowline.domain.jsonschemas import check_schema
from flowline.errors import ClientError, NotFound, TooLarge, ValidationFailed
from flowline.settings import Settings, retention_seconds, retention_text
from flowline_schemas.pagination import Page
from flowline_schemas.workflows import Workflow, WorkflowSummary, WorkflowVersion
from litestar.datastructures import State
from litestar.di import NamedDependency

from flowline_api.domain.workflows.schemas import WorkflowCreate, WorkflowState, WorkflowUpdate
from flowline_api.pagination import decode_cursor, encode_cursor

SORT_COLUMNS: dict[str, WorkflowSort] = {"name": "name", "createdAt": "created_at", "updatedAt": "updated_at"}
SaveAction = Literal["created", "updated", "unchanged"]
# The fields of a workflow that change without a new version (named as in its API; see ``metadata_of``).
METADATA_FIELDS = ("label", "description", "tags", "enabled", "public", "retention")


def retention_of(record: asyncpg.Record) -> str | None:
    """A workflow's own retention as its API shows it (``30d``), None: its tenant's default, else the server's."""
    seconds: int | None = record["retention_seconds"]
    return None if seconds is None else retention_text(seconds)


def metadata_of(record: asyncpg.Record) -> dict[str, Any]:
    """The fields of a workflow row that change without a new version, by their API names."""
    return {field: retention_of(record) if field == "retention" else record[field] for field in METADATA_FIELDS}


def _normal_retention(text: str | None) -> str | None:
    """A retention as it is shown again (``60s`` is ``1m``), so that the same duration is no change."""
    return None if text is None else retention_text(retention_seconds(text))


def to_workflow(record: asyncpg.Record) -> Workflow:
    """The response body for a workflow row joined with a version."""
    return Workflow(
        ref=record["ref"],
        pack=record["pack"],
        name=record["name"],
        label=record["label"],
        description=record["description"],
        version=record["version"],
        definition=mask_definition(record["definition"]),
        input_schema=record["input_schema"],
        output_schema=record["output_schema"],
        tags=list(record["tags"]),
        enabled=record["enabled"],
        public=record["public"],
        retention=retention_of(record),
        created_by=record["created_by"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


def to_summary(record: asyncpg.Record) -> WorkflowSummary:
    """The list item for a workflow row."""
    return WorkflowSummary(
        ref=record["ref"],
        pack=record["pack"],
        name=record["name"],
        label=record["label"],
        description=record["description"],
        version=record["version"],
        tags=list(record["tags"]),
        enabled=record["enabled"],
        public=record["public"],
        retention=retention_of(record),
        created_by=record["created_by"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


def audited_fields(record: asyncpg.Record | None) -> dict[str, Any] | None:
    """What the audit log compares of a workflow (its API field names)."""
    if record is None:
        return None
    return {
        "label": record["label"],
        "description": record["description"],
        "tags": list(record["tags"]),
        "enabled": record["enabled"],
        "public": record["public"],
        "retention": retention_of(record),
        "version": record["version"],
        "definition": mask_definition(record["definition"]),
        "inputSchema": record["input_schema"],
        "outputSchema": record["output_schema"],
    }


def _stored_secrets(definition: Any) -> dict[tuple[str, str], tuple[str, str]]:
    """Each sealed secret header value of a stored definition with its step's URL, by step id and header name."""
    stored = msgspec.convert(definition, WorkflowDefinition)
    return {
        (step.id, name): (sealed, step.request.url)
        for step in stored.steps
        if step.request is not None
        for name, sealed in request_secrets(step.request).items()
    }


def seal_secrets(cipher: MultiFernet, definition: WorkflowDefinition, stored: Any) -> Any:
    """``definition`` as it is stored (JSON builtins): every secret header value sealed.

    ``***`` keeps the value stored (in ``stored``, the current version's definition) for the same step and
    header, so a client may send back what it read — while the step's ``url`` stays what it was: a stored
    secret never follows its step somewhere new unless whoever moves it sends it again. A value equal to the
    stored one keeps its token too, so that the same definition sent again is not a new version.

    Raises:
        ValidationFailed: ``***`` where nothing is stored or where the step's url changed, or a value that
            cannot travel in a header (the message names the header, never the value).
    """
    sealed_before = _stored_secrets(stored) if stored is not None else {}
    built: Any = msgspec.to_builtins(definition)
    for index, step in enumerate(definition.steps):
        for name, value in request_secrets(step.request).items():
            pointer = f"/definition/steps/{index}/request/headers/{name.replace('~', '~0').replace('/', '~1')}"
            label = f"step {step.id!r}: header {name!r}"
            token, stored_url = sealed_before.get((step.id, name), (None, None))
            if value == SECRET_MASK:
                if token is None:
                    raise ValidationFailed(
                        f"{label}: {SECRET_MASK} keeps the stored secret, and none is stored for this step and header",
                        pointer=pointer,
                    )
                assert step.request is not None  # it has a secret header
                if step.request.url != stored_url:
                    raise ValidationFailed(
                        f"{label}: {SECRET_MASK} keeps the stored secret only while the step's url stays the same; "
                        "the url changed, so send the secret again",
                        pointer=pointer,
                    )
            else:
                check_secret_value(value, label, pointer)
                if token is None or open_secret(cipher, token, label) != value:
                    token = seal_secret(cipher, value)
            built["steps"][index]["request"]["headers"][name] = {"secret": token}
    return built


def check_schemas(input_schema: Any, output_schema: Any) -> None:
    """Check a workflow's input and output JSON Schemas, those that are not None.

    Raises:
        ValidationFailed: a schema is invalid (the problem names the JSON pointer).
    """
    for field, schema in (("inputSchema", input_schema), ("outputSchema", output_schema)):
        if schema is not None:
            check_schema(schema, f"/{field}")


def _cursor_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class WorkflowService:
    """Stores definitions and their versions, and lists them."""

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, known_actions: frozenset[str], cipher: MultiFernet
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._known_actions = known_actions
        self._cipher = cipher

    async def check_definition(
        self, connection: asyncpg.Connection, tenant_id: uuid.UUID, definition: WorkflowDefinition, stored: Any
    ) -> Any:
        """Validate a workflow's definition; returns it as stored (JSON builtins), secret header values sealed.

        ``stored`` is the current version's definition (None for a new workflow), whose secrets ``***`` keeps
        (see ``seal_secrets``).

        Raises:
            ValidationFailed: the definition is invalid (the problem names the JSON pointer).
            TooLarge: the definition exceeds the size limits.
        """
        size = len(msgspec.json.encode(definition))
        if size > self._settings.max_definition_bytes:
            raise TooLarge(f"the definition is {size} bytes; the limit is {self._settings.max_definition_bytes}")
        named_agents = {step.agent for step in definition.steps if step.type == "agent" and step.agent}
        known_agents: set[str] = set()
        if named_agents:
            rows = await connection.fetch(
                "SELECT name FROM agents WHERE tenant_id = $1 AND name = any($2::text[]) AND deleted_at IS NULL",
                tenant_id,
                sorted(named_agents),
            )
            known_agents = {row["name"] for row in rows}
        validate_definition(
            definition,
            known_actions=self._known_actions,
            max_steps=self._settings.max_steps_per_workflow,
            known_agents=known_agents,
        )
        return seal_secrets(self._cipher, definition, stored)

    async def save(
        self,
        connection: asyncpg.Connection,
        tenant_id: uuid.UUID,
        ref: str,
        data: WorkflowState,
        actor: Actor,
        *,
        replace: bool,
    ) -> tuple[SaveAction, asyncpg.Record]:
        """Create a workflow in the caller's transaction, with its audit row.

        ``replace`` (pack install) instead gives an existing workflow the whole state ``data``.

        Raises:
            ValidationFailed, TooLarge: see ``check_definition``; also an invalid schema.
            NotFound: the pack does not exist.
            Conflict: the workflow exists and ``replace`` is False.
        """
        if replace:
            try:
                before = await read_workflow(connection, tenant_id, ref, for_update=True)
            except NotFound:
                pass
            else:
                return await self.change(connection, tenant_id, before, WorkflowUpdate.replacing(data), actor)
        definition = await self.check_definition(connection, tenant_id, data.definition, None)
        check_schemas(data.input_schema, data.output_schema)
        after = await create_workflow(
            connection,
            tenant_id=tenant_id,
            ref=ref,
            label=data.label,
            description=data.description,
            tags=data.tags,
            enabled=data.enabled,
            public=data.public,
            definition=definition,
            input_schema=data.input_schema,
            output_schema=data.output_schema,
            created_by=actor.principal,
            retention_seconds=None if data.retention is None else retention_seconds(data.retention),
        )
        await self._audit(connection, tenant_id, ref, "create", actor, None, after)
        return "created", after

    async def change(
        self,
        connection: asyncpg.Connection,
        tenant_id: uuid.UUID,
        before: asyncpg.Record,
        changes: WorkflowUpdate,
        actor: Actor,
    ) -> tuple[SaveAction, asyncpg.Record]:
        """Merge ``changes`` over a workflow in the caller's transaction, with its audit row: the one way it changes.

        ``before`` is the workflow as ``read_workflow(..., for_update=True)`` read it: its row stays locked until
        the transaction ends, so concurrent changes apply one after the other and none is lost. A different
        definition or schema adds the next version; other fields change the workflow's metadata only; changes
        equal to what is stored change nothing.

        Raises:
            ValidationFailed, TooLarge: see ``check_definition``; also an invalid schema.
        """
        definition = before["definition"]
        if changes.definition is not msgspec.UNSET:
            definition = await self.check_definition(connection, tenant_id, changes.definition, definition)
        check_schemas(
            None if changes.input_schema is msgspec.UNSET else changes.input_schema,
            None if changes.output_schema is msgspec.UNSET else changes.output_schema,
        )
        input_schema = before["input_schema"] if changes.input_schema is msgspec.UNSET else changes.input_schema
        output_schema = before["output_schema"] if changes.output_schema is msgspec.UNSET else changes.output_schema
        stored = metadata_of(before)
        metadata = {
            field: stored[field] if (value := getattr(changes, field)) is msgspec.UNSET else value
            for field in METADATA_FIELDS
        }
        metadata["retention"] = _normal_retention(metadata["retention"])
        new_version = (definition, input_schema, output_schema) != (
            before["definition"],
            before["input_schema"],
            before["output_schema"],
        )
        new_metadata = metadata != stored
        if not new_version and not new_metadata:
            return "unchanged", before
        if new_metadata:
            retention = metadata.pop("retention")
            await update_workflow_metadata(
                connection,
                before["id"],
                **metadata,
                retention_seconds=None if retention is None else retention_seconds(retention),
            )
        if new_version:
            await add_workflow_version(
                connection,
                tenant_id=tenant_id,
                workflow_id=before["id"],
                version=before["latest_version"] + 1,
                definition=definition,
                input_schema=input_schema,
                output_schema=output_schema,
                created_by=actor.principal,
            )
        after = await read_workflow(connection, tenant_id, before["ref"])
        await self._audit(connection, tenant_id, before["ref"], "update", actor, before, after)
        return "updated", after

    async def _audit(
        self,
        connection: asyncpg.Connection,
        tenant_id: uuid.UUID,
        ref: str,
        action: str,
        actor: Actor,
        before: asyncpg.Record | None,
        after: asyncpg.Record | None,
    ) -> None:
        await record_audit(
            connection,
            tenant_id=tenant_id,
            entity_type="workflow",
            entity_id=ref,
            action=action,
            actor=actor,
            changes=field_changes(audited_fields(before), audited_fields(after)),
        )

    async def create(self, tenant_id: uuid.UUID, data: WorkflowCreate, actor: Actor) -> Workflow:
        """Validate and store a new workflow as version 1.

        Raises:
            ValidationFailed: the definition or a schema is invalid (the problem names the JSON pointer).
            TooLarge: the definition exceeds the size limits.
            NotFound: the pack does not exist.
            Conflict: the ref exists.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            _, record = await self.save(connection, tenant_id, data.ref, data, actor, replace=False)
        return to_workflow(record)

    async def update(self, tenant_id: uuid.UUID, ref: str, changes: WorkflowUpdate, actor: Actor) -> Workflow:
        """Change the fields of a workflow that ``changes`` gives (PUT and PATCH); see ``change``.

        Raises:
            ValidationFailed, TooLarge: see ``create``.
            NotFound: no such workflow.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            before = await read_workflow(connection, tenant_id, ref, for_update=True)
            _, record = await self.change(connection, tenant_id, before, changes, actor)
        return to_workflow(record)

    async def delete(self, tenant_id: uuid.UUID, ref: str, actor: Actor) -> None:
        """Soft-delete a workflow; its executions keep showing it and the ref can be defined again.

        Raises:
            NotFound: no such workflow.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            await self.delete_in(connection, tenant_id, ref, actor)

    async def delete_in(self, connection: asyncpg.Connection, tenant_id: uuid.UUID, ref: str, actor: Actor) -> None:
        """``delete`` inside the caller's transaction."""
        before = await read_workflow(connection, tenant_id, ref, for_update=True)
        await delete_workflow(connection, before["id"])
        await self._audit(connection, tenant_id, ref, "delete", actor, before, None)

    async def read(self, tenant_id: uuid.UUID, ref: str, version: int | None = None) -> Workflow:
        """The latest version of a workflow, or the given one.

        Raises:
            NotFound: no such workflow or version.
        """
        return to_workflow(await read_workflow(self._pool, tenant_id, ref, version))

    async def version_id(self, tenant_id: uuid.UUID, ref: str, version: int) -> uuid.UUID:
        """The id of one version of a live workflow (a version never changes: what it defines may be kept by it).

        Raises:
            NotFound: no such workflow or version.
        """
        return await read_version_id(self._pool, tenant_id=tenant_id, ref=ref, version=version)

    async def version_definition(self, version_id: uuid.UUID) -> Any:
        """The definition of a workflow version, with its secret values masked as ``read`` shows them.

        Raises:
            NotFound: no such version.
        """
        return mask_definition(await read_version_document(self._pool, version_id=version_id))

    async def list(
        self,
        tenant_id: uuid.UUID,
        filters: WorkflowFilters,
        *,
        sort: str,
        order: Literal["asc", "desc"] | None,
        limit: int,
        offset: int,
        cursor: str | None,
    ) -> Page[WorkflowSummary]:
        """One page of live workflows.

        ``order`` defaults to ascending by name and to newest first by time. The cursor holds the sort and
        the key of the last item, so the next page starts right after it even when workflows are added.

        Raises:
            ClientError: a cursor that is not from this list or was made for another sort.
        """
        column = SORT_COLUMNS[sort]
        order = order or ("asc" if sort == "name" else "desc")
        after: tuple[Any, uuid.UUID] | None = None
        if cursor is not None:
            cursor_sort, cursor_order, value, last_id = decode_cursor(cursor, 4)
            if (cursor_sort, cursor_order) != (sort, order):
                raise ClientError(f"cursor: made for sort={cursor_sort}&order={cursor_order}, not {sort}&{order}")
            try:
                if not isinstance(value, str):
                    raise TypeError(value)
                after = (value if column == "name" else datetime.fromisoformat(value), uuid.UUID(last_id))
            except (TypeError, ValueError, AttributeError) as err:
                raise ClientError("cursor: not a cursor returned by this list") from err
        async with self._pool.acquire() as connection:
            records = await list_workflows(
                connection,
                tenant_id,
                filters,
                sort=column,
                descending=order == "desc",
                limit=limit + 1,
                offset=offset,
                after=after,
            )
            total = await count_workflows(connection, tenant_id, filters)
        next_cursor = None
        if len(records) > limit:
            last = records[limit - 1]
            next_cursor = encode_cursor([sort, order, _cursor_value(last[column]), str(last["id"])])
        return Page(
            items=[to_summary(record) for record in records[:limit]],
            total=total,
            limit=limit,
            offset=offset,
            next_cursor=next_cursor,
        )

    async def list_versions(
        self, tenant_id: uuid.UUID, ref: str, *, limit: int, offset: int, cursor: str | None
    ) -> Page[WorkflowVersion]:
        """The versions of a workflow, newest first.

        Raises:
            NotFound: no such workflow.
            ClientError: a cursor that is not from this list.
        """
        before = None
        if cursor is not None:
            (before,) = decode_cursor(cursor, 1)
            if not isinstance(before, int):
                raise ClientError("cursor: not a cursor returned by this list")
        async with self._pool.acquire() as connection:
            workflow = await read_workflow(connection, tenant_id, ref)
            records = await list_workflow_versions(
                connection, workflow["id"], limit=limit + 1, offset=offset, before=before
            )
        next_cursor = encode_cursor([records[limit - 1]["version"]]) if len(records) > limit else None
        return Page(
            items=[
                WorkflowVersion(version=row["version"], created_by=row["created_by"], created_at=row["created_at"])
                for row in records[:limit]
            ],
            total=workflow["latest_version"],
            limit=limit,
            offset=offset,
            next_cursor=next_cursor,
        )

    async def read_pack_id(self, tenant_id: uuid.UUID, pack: str) -> uuid.UUID:
        """The id of a live pack.

        Raises:
            NotFound: no such pack.
        """
        record = await read_pack(self._pool, tenant_id, pack)
        return uuid.UUID(str(record["id"]))


def provide_workflow_service(
    pool: NamedDependency[asyncpg.Pool], settings: NamedDependency[Settings], state: State
) -> WorkflowService:
    """A workflow service for this request (it seals secret header values with the app's cipher)."""
    return WorkflowService(pool, settings, state.known_actions, state.auth_cipher)
