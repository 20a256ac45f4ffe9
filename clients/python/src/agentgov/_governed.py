"""governed: a tool function that runs only when agentgov allows it."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
from typing import Any, Callable, Mapping

from ._client import AsyncClient, Client, Decision
from ._errors import ApprovalRequired, Denied


def governed(
    client: Client | AsyncClient,
    tool: str | None = None,
    *,
    session: str | None = None,
    server: str | None = None,
    annotations: Mapping[str, Any] | None = None,
    wait: float | None = None,
    interval: float = 1.0,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorates a tool function (plain or ``async``) so that each call

    1. asks agentgov (``pre_tool_call``, the tool named ``tool`` or the
       function's name, its arguments bound by parameter name);
    2. runs the function only on ``allow``;
    3. records the outcome: ``ok`` or ``error`` with the exception's text,
       and the latency;
    4. otherwise raises Denied (``ApprovalRequired`` for a ticket) carrying
       the decision's reasons.

    With ``wait`` (seconds), a call that needs approval waits that long for
    a person to decide, then retries once with the ticket; a denied or
    expired ticket raises Denied, no decision raises ApprovalTimeout.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = tool or fn.__name__
        sig = inspect.signature(fn)
        sync = client.sync if isinstance(client, AsyncClient) else client

        def action_of(args: tuple, kwargs: dict) -> dict:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            call_args: dict[str, Any] = {}
            for k, v in bound.arguments.items():
                kind = sig.parameters[k].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    call_args.update(v)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    call_args[k] = list(v)
                else:
                    call_args[k] = v
            # Arguments agentgov cannot read are refused here: a decision
            # on a stand-in for them would decide something else.
            try:
                json.dumps(call_args, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise TypeError(f"agentgov: the arguments of {name} are not JSON: {e}") from None
            t: dict[str, Any] = {"name": name}
            if server:
                t["server"] = server
            if annotations:
                t["annotations"] = dict(annotations)
            a: dict[str, Any] = {"point": "pre_tool_call", "tool": t, "args": call_args}
            if session:
                a["session"] = session
            return a

        def decide(a: dict) -> Decision:
            d = sync.decide(a)
            if d.effect == "require_approval" and wait is not None:
                ticket = sync.wait_for_approval(d.ticket, timeout=wait, interval=interval)
                if ticket.get("status") != "approved":
                    raise Denied(Decision(d, effect="deny", reasons=d.reasons + [f"approval {d.ticket} {ticket.get('status')}"]))
                d = sync.decide(dict(a, approval_id=d.ticket))
            if d.effect == "require_approval":
                raise ApprovalRequired(d)
            if not d.allowed:
                raise Denied(d)
            return d

        def settle(d: Decision, started: float, err: BaseException | None) -> None:
            ms = (time.perf_counter() - started) * 1000
            if err is None:
                sync.outcome(d.id, "ok", latency_ms=ms)
            else:
                sync.outcome(d.id, "error", latency_ms=ms, error=f"{type(err).__name__}: {err}"[:1000])

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                a = action_of(args, kwargs)
                d = await asyncio.to_thread(decide, a)
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as e:
                    await asyncio.to_thread(settle, d, started, e)
                    raise
                await asyncio.to_thread(settle, d, started, None)
                return result

            return run_async

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            a = action_of(args, kwargs)
            d = decide(a)
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:
                settle(d, started, e)
                raise
            settle(d, started, None)
            return result

        return run

    return wrap
