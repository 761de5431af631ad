"""The console's workflows: the list, a workflow's (or version's) page with its graph, its Run form, enable/disable."""

from __future__ import annotations

import difflib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

from flowline.db.audit import Actor
from flowline.db.workflows import WorkflowFilters
from flowline.domain.credentials import Principal
from flowline.errors import ClientError, ValidationFailed
from flowline_schemas.workflows import Workflow
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from flowline_api.auth import OPERATOR, VIEWER
from flowline_api.console.graph import Graph, GroupCounts, fan_outs, folded, layout
from flowline_api.console.views import compact, highlighted, page_context, pretty
from flowline_api.domain.executions.filters import execution_filters
from flowline_api.domain.executions.service import ExecutionService
from flowline_api.domain.workflows.schemas import ExecuteRequest, WorkflowUpdate
from flowline_api.domain.workflows.service import WorkflowService
from flowline_api.rate_limits import EXECUTION_START

PAGE_SIZE: Final = 50
RECENT_EXECUTIONS: Final = 10
_REQUIRED = re.compile(r"""['"]([^'"]+)['"] is a required property""")


@dataclass(frozen=True, slots=True)
class Field:
    """One input of the Run form, from a property of the workflow's input schema."""

    name: str
    kind: str  # text, number, integer, boolean or json (objects, arrays, anything else)
    required: bool
    description: str
    default: str


def form_fields(input_schema: dict[str, Any] | None) -> list[Field]:
    """The Run form's fields: one per top-level property of the input schema (none without one)."""
    if not input_schema or not isinstance(input_schema.get("properties"), dict):
        return []
    required = set(input_schema.get("required") or [])
    fields = []
    for name, schema in input_schema["properties"].items():
        schema = schema if isinstance(schema, dict) else {}
        kind = {"string": "text", "number": "number", "integer": "integer", "boolean": "boolean"}.get(
            str(schema.get("type")), "json"
        )
        default = schema.get("default")
        shown = "" if default is None else (json.dumps(default) if kind == "json" else str(default))
        fields.append(Field(name, kind, name in required, str(schema.get("description") or ""), shown))
    return fields


def form_input(fields: list[Field], form: Any) -> dict[str, Any]:
    """The execution's input from the Run form; empty fields are left out (the schema says if they may be).

    Raises:
        ValidationFailed: a number, integer or JSON field that does not hold one, pointing at the field.
    """
    if not fields:
        text = str(form.get("input") or "").strip() or "{}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValidationFailed(f"/input: not JSON ({err.msg})", pointer="/input") from err
        if not isinstance(value, dict):
            raise ValidationFailed("/input: must be a JSON object", pointer="/input")
        return value
    values: dict[str, Any] = {}
    for field in fields:
        raw = str(form.get(f"input.{field.name}") or "").strip()
        if field.kind == "boolean":
            values[field.name] = raw == "true"
            continue
        if not raw:
            continue
        try:
            if field.kind == "integer":
                values[field.name] = int(raw)
            elif field.kind == "number":
                values[field.name] = float(raw)
            elif field.kind == "json":
                values[field.name] = json.loads(raw)
            else:
                values[field.name] = raw
        except ValueError as err:
            expected = {"integer": "an integer", "number": "a number"}.get(field.kind, "JSON")
            raise ValidationFailed(f"/input/{field.name}: not {expected}", pointer=f"/input/{field.name}") from err
    return values


def field_of(error: ValidationFailed, fields: list[Field]) -> str | None:
    """The Run form field a validation message belongs beside (None: the form as a whole)."""
    names = {field.name for field in fields}
    pointer = error.pointer or ""
    if pointer.startswith("/input/"):
        name = pointer.removeprefix("/input/").split("/", 1)[0]
        if name in names:
            return name
    missing = _REQUIRED.search(error.detail)
    return missing[1] if missing and missing[1] in names else None


class ConsoleWorkflowController(Controller):
    """``/ui/workflows``, ``/ui/workflows/{ref}`` and ``/ui/workflows/{ref}/versions/{n}``."""

    path = "/workflows"

    @get("/", opt=VIEWER, name="console:workflows")
    async def list_page(
        self,
        request: Request[Principal, Any, State],
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        workflow_service: NamedDependency[WorkflowService],
    ) -> Template:
        """Workflows by name, filtered by text, tag and enabled."""
        query = request.query_params
        enabled = {"yes": True, "no": False}.get(query.get("enabled", ""))
        filters = WorkflowFilters(
            tags=[tag for tag in query.getall("tag", []) if tag] or None,
            enabled=enabled,
            search=query.get("q") or None,
        )
        page = await workflow_service.list(
            tenant_id, filters, sort="name", order=None, limit=PAGE_SIZE, offset=0, cursor=query.get("cursor") or None
        )
        return Template("workflows.html", context=page_context(caller, page=page, query=query))

    @get(["/{ref:str}", "/{ref:str}/versions/{version:int}"], opt=VIEWER, name="console:workflow")
    async def workflow_page(
        self,
        ref: FromPath[str],
        caller: NamedDependency[Principal],
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        execution_service: NamedDependency[ExecutionService],
        version: FromPath[int | None] = None,
    ) -> Template:
        """The workflow's graph, definition, versions, recent executions and Run form."""
        context = await _workflow_context(tenant_id, caller, ref, version, workflow_service, execution_service)
        return Template("workflow.html", context=context)

    @get("/{ref:str}/diff", opt=VIEWER, name="console:workflow-diff")
    async def diff_page(
        self,
        request: Request[Principal, Any, State],
        ref: FromPath[str],
        caller: NamedDependency[Principal],
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
    ) -> Template:
        """What changed between two versions (``?from=<n>&to=<m>``): definition and schemas, as a unified diff.

        Raises:
            ClientError: a version that is not a number.
        """
        query = request.query_params
        versions = []
        for name in ("from", "to"):
            value = query.get(name, "")
            if not value.isdigit():
                raise ClientError(f"{name}: {value!r} is not a version number")
            versions.append(await workflow_service.read(tenant_id, ref, int(value)))
        before, after = versions
        lines = difflib.unified_diff(
            _versioned(before).splitlines(),
            _versioned(after).splitlines(),
            f"v{before.version}",
            f"v{after.version}",
            lineterm="",
        )
        context = page_context(caller, ref=ref, before=before, after=after, lines=list(lines))
        return Template("diff.html", context=context)

    @post("/{ref:str}/run", opt=OPERATOR | EXECUTION_START, name="console:run")
    async def run(
        self,
        request: Request[Principal, Any, State],
        ref: FromPath[str],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        execution_service: NamedDependency[ExecutionService],
    ) -> Redirect | Template:
        """Start an execution from the Run form; the API's validation messages come back beside the fields."""
        form = await request.form()
        workflow = await workflow_service.read(tenant_id, ref)
        fields = form_fields(workflow.input_schema)
        try:
            started = await execution_service.start(
                tenant_id, ref, ExecuteRequest(input=form_input(fields, form)), caller, actor
            )
        except ClientError as error:
            context = await _workflow_context(tenant_id, caller, ref, None, workflow_service, execution_service)
            field = field_of(error, fields) if isinstance(error, ValidationFailed) else None
            context.update(form=form, field_errors={field: error.detail} if field else {})
            context["run_error"] = None if field else error.detail
            return Template("workflow.html", context=context, status_code=error.status_code)
        return Redirect(f"/ui/executions/{started.id}", status_code=303)

    @post("/{ref:str}/enabled", opt=OPERATOR, name="console:enable")
    async def set_enabled(
        self,
        request: Request[Principal, Any, State],
        ref: FromPath[str],
        actor: NamedDependency[Actor],
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
    ) -> Redirect:
        """Enable or disable the workflow (a disabled one starts no executions)."""
        form = await request.form()
        await workflow_service.update(tenant_id, ref, WorkflowUpdate(enabled=form.get("enabled") == "true"), actor)
        return Redirect(f"/ui/workflows/{ref}", status_code=303)


def definition_graph(steps: list[dict[str, Any]]) -> Graph:
    """A definition's graph as an execution of it is first drawn: each fan-out one node saying how many branches."""
    groups = fan_outs(steps)
    return layout(
        folded(steps, groups, ()), {}, {group.key: GroupCounts(group.name, len(group.members)) for group in groups}
    )


def _versioned(workflow: Workflow) -> str:
    """The parts of a version that versions differ in, as indented JSON lines."""
    return pretty(
        {
            "definition": workflow.definition,
            "inputSchema": workflow.input_schema,
            "outputSchema": workflow.output_schema,
        }
    )


async def _workflow_context(
    tenant_id: uuid.UUID,
    caller: Principal,
    ref: str,
    version: int | None,
    workflows: WorkflowService,
    executions: ExecutionService,
) -> dict[str, Any]:
    workflow = await workflows.read(tenant_id, ref, version)
    versions = await workflows.list_versions(tenant_id, ref, limit=20, offset=0, cursor=None)
    filters = execution_filters(
        workflow=ref,
        statuses=None,
        triggered_by=None,
        started_by=None,
        parent_id=None,
        created_after=None,
        created_before=None,
        tags=None,
        metadata=None,
        search=None,
        caller=caller,
    )
    recent = await executions.list(
        tenant_id, filters, sort="createdAt", order="desc", limit=RECENT_EXECUTIONS, offset=0, cursor=None
    )
    steps = list(workflow.definition.get("steps", []))
    return page_context(
        caller,
        workflow=workflow,
        graph=definition_graph(steps),
        selected=None,
        execution=None,
        versions=versions.items,
        recent=recent.items,
        fields=form_fields(workflow.input_schema),
        pretty=pretty,
        form={},
        field_errors={},
        run_error=None,
        definition=compact(workflow.definition),
        highlighted=highlighted,
    )
