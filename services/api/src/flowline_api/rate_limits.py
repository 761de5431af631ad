"""Rate limits: Litestar's rate-limit middleware once per budget (reads, writes, execution starts) per caller.

Litestar's middleware counts one rate per config, so each budget is a config of its own that throttles only its
class of request: starts are the routes marked ``opt=EXECUTION_START``, reads the GET (and HEAD, OPTIONS)
requests, writes everything else. A request counts against exactly one budget and answers with its headers.

The limiters run inside the authentication middleware, which sets ``request.user`` to the principal or to None
for missing or bad credentials (the 401 comes from the role guard, after the limiters): a principal has its own
budgets; unauthenticated callers share those of their client address, so guessing keys is limited too.

Counting is Litestar's: per window (reset when the window ends), read then written back under a lock of the
process. With the PostgreSQL store the replicas share the counts, but two replicas may read the same count at
once and both write it plus one: under races the limit is approximate, erring towards letting requests through.
"""

from __future__ import annotations

from typing import Any, Literal

import asyncpg
from flowline.db.store import PostgresStore
from flowline.domain.credentials import Principal
from flowline.runtime.loops import LoopService
from flowline.settings import Settings, env_name, parse_rate
from litestar import Request
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.stores.memory import MemoryStore

Budget = Literal["reads", "writes", "starts"]
BUDGETS: tuple[Budget, ...] = ("reads", "writes", "starts")
# The name of the store the budgets are counted in, among the app's stores.
RATE_LIMIT_STORE = "rate_limits"
# The opt of routes that start an execution: they spend the starts budget instead of the writes budget.
EXECUTION_START: dict[str, Budget] = {"rate_limit": "starts"}
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def budget_of(request: Request[Any, Any, Any]) -> Budget:
    """The budget a request spends."""
    if request.route_handler.opt.get("rate_limit") == "starts":
        return "starts"
    return "reads" if request.method in _READ_METHODS else "writes"


def caller_of(request: Request[Any, Any, Any]) -> str:
    """Whose budgets a request spends: its principal's, or without valid credentials its client address's."""
    # Not request.user: OPTIONS requests bypass authentication, which leaves no user in the scope at all.
    principal = request.scope.get("user")
    if isinstance(principal, Principal):
        # A JWT's sub is only unique within its tenant.
        return f"principal:{principal.tenant}:{principal.subject}"
    return f"address:{get_remote_address(request)}"


class _BudgetLimit:
    """The parts of one budget's config that need to know the budget: which requests, and their cache key."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    async def applies_to(self, request: Request[Any, Any, Any]) -> bool:
        # A coroutine although it never waits: Litestar runs a plain function here in a worker thread, three
        # thread hand-offs per request.
        return budget_of(request) == self.budget

    def identifier(self, request: Request[Any, Any, Any]) -> str:
        # The middleware's keys are its class name and this identifier: the budget keeps the three apart.
        return f"{self.budget}:{caller_of(request)}"


def rate_limit_middleware(settings: Settings) -> list[DefineMiddleware]:
    """One Litestar rate-limit middleware per budget, with the rates of ``settings``.

    Raises:
        ConfigurationError: a rate setting is not ``<requests>/<period>``.
    """
    middleware = []
    for budget in BUDGETS:
        field = f"rate_limit_{budget}"
        period, requests = parse_rate(getattr(settings, field), env_name(field))
        limit = _BudgetLimit(budget)
        config = RateLimitConfig(
            rate_limit=(period, requests),
            identifier_for_request=limit.identifier,
            check_throttle_handler=limit.applies_to,
            store=RATE_LIMIT_STORE,
        )
        middleware.append(config.middleware)
    return middleware


def rate_limit_store(settings: Settings, pool: asyncpg.Pool) -> MemoryStore | PostgresStore:
    """Where the budgets are counted: in this process, or in PostgreSQL for every replica alike."""
    if settings.rate_limit_store == "postgres":
        return PostgresStore(pool, namespace=RATE_LIMIT_STORE)
    return MemoryStore()


class ExpiredBudgetCleanup(LoopService):
    """Forgets the budgets of callers whose window has ended, so that one-off client addresses leave nothing."""

    def __init__(self, store: MemoryStore | PostgresStore, interval_seconds: float = 60.0) -> None:
        super().__init__("rate-limit-cleanup", interval_seconds)
        self._store = store

    async def run_once(self) -> None:
        """Delete the expired entries."""
        await self._store.delete_expired()
