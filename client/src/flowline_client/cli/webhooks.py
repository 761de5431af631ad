"""``flowline webhooks …``: signed HTTP callbacks on state events, and the log of their deliveries."""

from __future__ import annotations

import argparse

from flowline_client import AsyncFlowlineClient
from flowline_client.cli.arguments import Subparsers, command
from flowline_client.cli.lists import add_paging, print_list
from flowline_client.cli.output import Output, text, when
from flowline_client.models import Webhook, WebhookDelivery, WebhookWithSecret

SECRET_HINT = "Keep the secret: it is not shown again (`flowline webhooks rotate-secret` makes a new one)."


def _show(webhook: Webhook, out: Output) -> None:
    pairs = [
        ("Webhook", webhook.id),
        ("URL", webhook.url),
        ("Enabled", "yes" if webhook.enabled else f"no {text(webhook.disabled_reason)}".strip()),
        ("Events", ", ".join(webhook.events)),
        ("Workflows", ", ".join(webhook.workflows) if webhook.workflows else "all"),
        ("Description", text(webhook.description)),
        ("Updated", when(webhook.updated_at)),
    ]
    if webhook.previous_secret_expires_at is not None:
        pairs.append(("Old secret until", when(webhook.previous_secret_expires_at)))
    if isinstance(webhook, WebhookWithSecret):
        pairs.append(("Secret", webhook.secret))
    out.fields(pairs)


def _delivery_row(delivery: WebhookDelivery) -> list[str]:
    outcome = str(delivery.last_status_code) if delivery.last_status_code is not None else text(delivery.last_error)
    return [
        delivery.id,
        delivery.event,
        delivery.status.upper(),
        str(delivery.attempts),
        outcome if delivery.attempts else "-",
        when(delivery.next_attempt_at) if delivery.status == "pending" else when(delivery.delivered_at),
        text(delivery.execution_id),
    ]


async def _list(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await print_list(
        out,
        args,
        page=lambda: client.list_webhooks(limit=args.limit, cursor=args.cursor),
        every=client.iter_webhooks,
        headers=["ID", "ENABLED", "EVENTS", "URL"],
        row=lambda hook: [hook.id, "yes" if hook.enabled else "no", ",".join(hook.events), hook.url],
    )


async def _get(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    webhook = await client.get_webhook(args.webhook)
    if out.json:
        out.document(webhook)
    else:
        _show(webhook, out)
    return 0


async def _with_secret(webhook: WebhookWithSecret, message: str, out: Output) -> int:
    if out.json:
        out.document(webhook)
        return 0
    out.line(message)
    _show(webhook, out)
    out.hint(SECRET_HINT)
    return 0


async def _create(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    webhook = await client.create_webhook(
        args.url,
        events=args.event,
        workflows=args.workflow,
        description=args.description,
        enabled=not args.disabled,
    )
    return await _with_secret(webhook, f"Webhook {webhook.id} created.", out)


async def _delete(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    await client.delete_webhook(args.webhook)
    out.result({"id": args.webhook, "deleted": True}, f"Webhook {args.webhook} deleted.")
    return 0


async def _rotate(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    webhook = await client.rotate_webhook_secret(args.webhook)
    return await _with_secret(webhook, f"Webhook {webhook.id} has a new secret; the old one still signs a while.", out)


async def _test(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    delivery = await client.test_webhook(args.webhook)
    follow = f"flowline webhooks deliveries {args.webhook}"
    out.result(delivery, f"Test delivery {delivery.id} queued; follow it with `{follow}`.")
    return 0


async def _deliveries(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await print_list(
        out,
        args,
        page=lambda: client.list_webhook_deliveries(
            args.webhook, status=args.status, limit=args.limit, cursor=args.cursor
        ),
        every=lambda: client.iter_webhook_deliveries(args.webhook, status=args.status),
        headers=["ID", "EVENT", "STATUS", "ATTEMPTS", "LAST", "NEXT/DELIVERED", "EXECUTION"],
        row=_delivery_row,
    )


async def _retry(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    delivery = await client.retry_webhook_delivery(args.webhook, args.delivery)
    out.result(delivery, f"Delivery {delivery.id} is due again now.")
    return 0


def register(subparsers: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    """Add the ``webhooks`` command group; webhooks and deliveries are named by id."""
    hooks = subparsers.add_parser("webhooks", help="signed HTTP callbacks on state events").add_subparsers(
        required=True, metavar="COMMAND"
    )
    add_paging(command(hooks, "list", _list, "list webhooks", common))
    command(hooks, "get", _get, "show a webhook", common).add_argument("webhook", help="a webhook id")
    parser = command(hooks, "create", _create, "create a webhook (its secret is shown once)", common)
    parser.add_argument("url", help="where deliveries are POSTed")
    parser.add_argument(
        "--event",
        action="append",
        help="a state event to send, e.g. WORKFLOW_FAILED (repeat; default: how executions end)",
    )
    parser.add_argument("--workflow", action="append", help="only executions of this workflow ref (repeat)")
    parser.add_argument("--description")
    parser.add_argument("--disabled", action="store_true", help="create it disabled")
    command(hooks, "delete", _delete, "delete a webhook", common).add_argument("webhook", help="a webhook id")
    command(hooks, "rotate-secret", _rotate, "give a webhook a new secret", common).add_argument(
        "webhook", help="a webhook id"
    )
    command(hooks, "test", _test, "send a webhook.test delivery", common).add_argument("webhook", help="a webhook id")
    parser = command(hooks, "deliveries", _deliveries, "list a webhook's deliveries, newest first", common)
    parser.add_argument("webhook", help="a webhook id")
    parser.add_argument("--status", choices=["pending", "succeeded", "failed"])
    add_paging(parser)
    parser = command(hooks, "retry", _retry, "send a delivery again now", common)
    parser.add_argument("webhook", help="a webhook id")
    parser.add_argument("delivery", help="a delivery id")
