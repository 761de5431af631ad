"""Pack use cases: create, list, read, delete, and install a pack folder in one transaction."""

from __future__ import annotations

import builtins  # PackService.list shadows the built-in inside the class
import posixpath
import re
import uuid
from typing import Any

import asyncpg
import msgspec
import yaml
from flowline.db.audit import Actor, field_changes, record_audit
from flowline.db.packs import count_packs, create_pack, delete_pack, list_packs, read_pack, update_pack
from flowline.db.workflows import live_workflows_in_pack
from flowline.errors import ClientError, Conflict, NotFound, ValidationFailed
from flowline_schemas.packs import Change, InstalledWorkflow, Pack, PackInstalled
from flowline_schemas.pagination import Page
from litestar.di import NamedDependency

from flowline_api.domain.packs.schemas import PackCreate, WorkflowFile
from flowline_api.domain.workflows.service import WorkflowService
from flowline_api.pagination import decode_cursor, encode_cursor

PACK_FILES = ("pack.yaml", "pack.yml")
_WORKFLOW_FILE = re.compile(r"^workflows/([^/]+)\.(?:ya?ml|json)$")
_MSGSPEC_PATH = re.compile(r" - at `\$(.*)`$")
_MSGSPEC_PART = re.compile(r"\.([^.\[]+)|\[(\d+|'[^']*'|\"[^\"]*\")\]")


def to_pack(record: asyncpg.Record) -> Pack:
    """The response body for a pack row."""
    return Pack(
        ref=record["ref"],
        label=record["label"],
        description=record["description"],
        version=record["version"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


def audited_fields(record: asyncpg.Record | None) -> dict[str, Any] | None:
    """What the audit log compares of a pack."""
    if record is None:
        return None
    return {"label": record["label"], "description": record["description"], "version": record["version"]}


def _pointer(error: msgspec.ValidationError) -> tuple[str, str]:
    """A msgspec error (``Expected `int` - at `$.steps[0].id```) as ``(message, JSON pointer)``."""
    text = str(error)
    match = _MSGSPEC_PATH.search(text)
    if match is None:
        return text, ""
    parts = [name or index.strip("'\"") for name, index in _MSGSPEC_PART.findall(match.group(1))]
    return text[: match.start()], "".join(f"/{part}" for part in parts)


def _in_file(file: str, error: ClientError) -> ClientError:
    """The same error, naming the file of the pack folder it comes from."""
    return type(error)(f"{file}: {error.detail}", extra={**error.extra, "file": file})


def _parse(file: str, content: str, shape: type[Any]) -> Any:
    """A YAML (or JSON) file of the folder, decoded into ``shape``.

    Raises:
        ValidationFailed: it does not parse or does not have the shape; the problem names the file and pointer.
    """
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError as err:
        raise ValidationFailed(f"{file}: not valid YAML: {err}", extra={"file": file}) from err
    if isinstance(document, dict) and isinstance(document.get("version"), int | float):
        document["version"] = str(document["version"])  # `version: 1.2` in pack.yaml is a YAML number
    try:
        return msgspec.convert(document, shape, strict=True)
    except msgspec.ValidationError as err:
        message, pointer = _pointer(err)
        raise ValidationFailed(
            f"{file}: {pointer or 'the file'}: {message}", pointer=pointer, extra={"file": file}
        ) from err


class PackService:
    """Stores packs; installs a pack folder with its workflows atomically."""

    def __init__(self, pool: asyncpg.Pool, workflows: WorkflowService) -> None:
        self._pool = pool
        self._workflows = workflows

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
            entity_type="pack",
            entity_id=ref,
            action=action,
            actor=actor,
            changes=field_changes(audited_fields(before), audited_fields(after)),
        )

    async def create(self, tenant_id: uuid.UUID, data: PackCreate, actor: Actor) -> Pack:
        """Store a new pack.

        Raises:
            Conflict: a pack with this ref exists.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            record = await create_pack(
                connection,
                tenant_id=tenant_id,
                ref=data.ref,
                label=data.label,
                description=data.description,
                version=data.version,
            )
            await self._audit(connection, tenant_id, data.ref, "create", actor, None, record)
        return to_pack(record)

    async def read(self, tenant_id: uuid.UUID, ref: str) -> Pack:
        """A pack.

        Raises:
            NotFound: no such pack.
        """
        return to_pack(await read_pack(self._pool, tenant_id, ref))

    async def list(self, tenant_id: uuid.UUID, *, limit: int, offset: int, cursor: str | None) -> Page[Pack]:
        """One page of packs by ref.

        Raises:
            ClientError: a cursor that is not from this list.
        """
        after = None
        if cursor is not None:
            (after,) = decode_cursor(cursor, 1)
            if not isinstance(after, str):
                raise ClientError("cursor: not a cursor returned by this list")
        async with self._pool.acquire() as connection:
            records = await list_packs(connection, tenant_id, limit=limit + 1, offset=offset, after_ref=after)
            total = await count_packs(connection, tenant_id)
        return Page(
            items=[to_pack(record) for record in records[:limit]],
            total=total,
            limit=limit,
            offset=offset,
            next_cursor=encode_cursor([records[limit - 1]["ref"]]) if len(records) > limit else None,
        )

    async def delete(self, tenant_id: uuid.UUID, ref: str, *, cascade: bool, actor: Actor) -> None:
        """Soft-delete a pack, and with ``cascade`` its workflows.

        Raises:
            NotFound: no such pack.
            Conflict: the pack holds workflows and ``cascade`` is false.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            pack = await read_pack(connection, tenant_id, ref, lock="update")
            workflows = await live_workflows_in_pack(connection, pack["id"])
            if workflows and not cascade:
                raise Conflict(
                    f"pack {ref!r} holds {len(workflows)} workflow(s); delete them first or pass cascade=true",
                    extra={"workflows": [workflow["ref"] for workflow in workflows[:100]]},
                )
            for workflow in workflows:
                await self._workflows.delete_in(connection, tenant_id, workflow["ref"], actor)
            await delete_pack(connection, pack["id"])
            await self._audit(connection, tenant_id, ref, "delete", actor, pack, None)

    async def install(self, tenant_id: uuid.UUID, files: dict[str, str], actor: Actor) -> PackInstalled:
        """Create or update a pack and its workflows from the files of its folder, all or nothing.

        Workflows of the pack that are not in the folder stay as they are.

        Raises:
            ValidationFailed: a file is missing, unexpected, malformed or holds an invalid workflow (the problem
                names the file and the JSON pointer); nothing is changed.
            TooLarge: a workflow exceeds the size limits; nothing is changed.
        """
        manifest, workflows = self._read_folder(files)
        async with self._pool.acquire() as connection, connection.transaction():
            pack_change, pack = await self._save_pack(connection, tenant_id, manifest, actor)
            installed = []
            for file, name, workflow in workflows:
                ref = f"{manifest.ref}.{name}"
                try:
                    change, record = await self._workflows.save(
                        connection, tenant_id, ref, workflow, actor, replace=True
                    )
                except ClientError as err:
                    raise _in_file(file, err) from err
                installed.append(InstalledWorkflow(file=file, ref=ref, change=change, version=record["version"]))
        return PackInstalled(pack=to_pack(pack), change=pack_change, workflows=installed)

    def _read_folder(self, files: dict[str, str]) -> tuple[PackCreate, builtins.list[tuple[str, str, WorkflowFile]]]:
        """The pack manifest and the workflows (file, name, content) of a folder, checked for shape."""
        paths = {posixpath.normpath(path.removeprefix("./")): path for path in files}
        manifests = [path for path in PACK_FILES if path in paths]
        if len(manifests) != 1:
            raise ValidationFailed(
                "a pack folder holds exactly one pack.yaml (or pack.yml)", pointer="/files", extra={"file": None}
            )
        manifest: PackCreate = _parse(manifests[0], files[paths[manifests[0]]], PackCreate)
        workflows: list[tuple[str, str, WorkflowFile]] = []
        names: dict[str, str] = {}
        for path in sorted(paths):
            if path in manifests:
                continue
            match = _WORKFLOW_FILE.match(path)
            if match is None:
                raise ValidationFailed(
                    f"{path}: unexpected file; a pack folder holds pack.yaml and workflows/<name>.yaml",
                    pointer=f"/files/{paths[path]}",
                    extra={"file": path},
                )
            workflow: WorkflowFile = _parse(path, files[paths[path]], WorkflowFile)
            name = workflow.name or match.group(1)
            if workflow.ref is not None and workflow.ref != f"{manifest.ref}.{name}":
                raise ValidationFailed(
                    f"{path}: /ref: {workflow.ref!r} is not {manifest.ref}.{name}; the pack.yaml names the pack",
                    pointer="/ref",
                    extra={"file": path},
                )
            if not re.match(r"^[a-z][a-z0-9_-]{0,126}$", name):
                raise ValidationFailed(
                    f"{path}: /name: {name!r} is not a workflow name (lower case letters, digits, '_', '-')",
                    pointer="/name",
                    extra={"file": path},
                )
            if name in names:
                raise ValidationFailed(
                    f"{path}: workflow {name!r} is also defined in {names[name]}", extra={"file": path}
                )
            names[name] = path
            workflows.append((path, name, workflow))
        return manifest, workflows

    async def _save_pack(
        self, connection: asyncpg.Connection, tenant_id: uuid.UUID, manifest: PackCreate, actor: Actor
    ) -> tuple[Change, asyncpg.Record]:
        try:
            before = await read_pack(connection, tenant_id, manifest.ref, lock="update")
        except NotFound:
            record = await create_pack(
                connection,
                tenant_id=tenant_id,
                ref=manifest.ref,
                label=manifest.label,
                description=manifest.description,
                version=manifest.version,
            )
            await self._audit(connection, tenant_id, manifest.ref, "create", actor, None, record)
            return "created", record
        if (before["label"], before["description"], before["version"]) == (
            manifest.label,
            manifest.description,
            manifest.version,
        ):
            return "unchanged", before
        record = await update_pack(
            connection, before["id"], label=manifest.label, description=manifest.description, version=manifest.version
        )
        await self._audit(connection, tenant_id, manifest.ref, "update", actor, before, record)
        return "updated", record


def provide_pack_service(
    pool: NamedDependency[asyncpg.Pool], workflow_service: NamedDependency[WorkflowService]
) -> PackService:
    """A pack service for this request (installing a pack saves workflows through the workflow service)."""
    return PackService(pool, workflow_service)
