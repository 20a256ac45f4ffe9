"""The HTTP client: one method per endpoint of docs/api.md an agent or an
approver uses."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping

from ._errors import APIError, ApprovalTimeout

__version__ = "0.4.0"

# Answers larger than this are a misbehaving server, not data.
_MAX_ANSWER = 64 << 20


class Decision(dict):
    """A decision as the server answered it (DESIGN §2), with shortcuts."""

    @property
    def id(self) -> str:
        return self.get("id", "")

    @property
    def effect(self) -> str:
        return self.get("effect", "")

    @property
    def allowed(self) -> bool:
        return self.get("effect") == "allow"

    @property
    def reasons(self) -> list[str]:
        return list(self.get("reasons") or [])

    @property
    def ticket(self) -> str:
        """The approval ticket's id when the effect is require_approval."""
        return (self.get("approval") or {}).get("id", "")


def _segment(what: str, value: str) -> str:
    # An id goes into a path: one that would change the path is refused
    # here rather than sent somewhere else.
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value:
        raise ValueError(f"agentgov: {what} {value!r} is not a valid id")
    return urllib.parse.quote(value, safe="")


class Client:
    """Talks to one agentgov server with one token.

    ``url`` is the server's base URL (``http://127.0.0.1:8420``), ``token``
    the bearer token (an agent's, an approver's or an admin's). ``timeout``
    bounds each request in seconds. Safe to share between threads.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"agentgov: server URL {url!r} is not an http(s) URL")
        if not token:
            raise ValueError("agentgov: a token is required")
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:  # never the token
        return f"agentgov.Client({self.url!r})"

    # -- transport ---------------------------------------------------------

    def _do(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None
        h = {
            "Authorization": "Bearer " + self._token,
            "Accept": "application/json",
            "User-Agent": "agentgov-python/" + __version__,
        }
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            h["Content-Type"] = "application/json"
        if headers:
            h.update({k: v for k, v in headers.items() if v})
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read(_MAX_ANSWER + 1)
                status = resp.status
        except urllib.error.HTTPError as e:
            raw = e.read(_MAX_ANSWER + 1)
            raise _error_of(e.code, raw) from None
        except (urllib.error.URLError, OSError) as e:
            raise APIError(0, "unreachable", f"{method} {url}: {e}") from None
        if len(raw) > _MAX_ANSWER:
            raise APIError(status, "too_large", "the server's answer is over the client's limit")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise APIError(status, "internal", "the server's answer is not JSON") from None

    # -- agents ------------------------------------------------------------

    def decide(
        self,
        action: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
        correlation_id: str | None = None,
    ) -> Decision:
        """Asks whether the action may happen (``POST /v1/decide``).

        A deny or require_approval is an answer, not an error: look at
        ``decision.effect``. The agent's identity comes from the token.
        """
        d = self._do(
            "POST",
            "/v1/decide",
            dict(action),
            headers={
                "Idempotency-Key": idempotency_key or "",
                "Traceparent": traceparent or "",
                "X-Correlation-Id": correlation_id or "",
            },
        )
        if not isinstance(d, dict) or d.get("effect") not in ("allow", "deny", "require_approval"):
            raise APIError(200, "internal", "the server's decision has no known effect")
        return Decision(d)

    def outcome(
        self,
        decision_id: str,
        status: str,
        *,
        tokens: int | None = None,
        cost_usd: float | None = None,
        latency_ms: float | None = None,
        error: str | None = None,
    ) -> None:
        """Records what happened after an allowed action
        (``POST /v1/decisions/{id}/outcome``): settles budgets, feeds SLIs."""
        if status not in ("ok", "error"):
            raise ValueError(f"agentgov: outcome status {status!r} is not ok or error")
        body: dict[str, Any] = {"status": status}
        for k, v in (("tokens", tokens), ("cost_usd", cost_usd), ("latency_ms", latency_ms), ("error", error)):
            if v is not None:
                body[k] = v
        self._do("POST", "/v1/decisions/" + _segment("decision id", decision_id) + "/outcome", body)

    def decision(self, decision_id: str) -> Decision:
        """A past decision of this agent (``GET /v1/decisions/{id}``)."""
        return Decision(self._do("GET", "/v1/decisions/" + _segment("decision id", decision_id)))

    # -- sessions ----------------------------------------------------------

    def create_session(self, session_id: str, *, agent: str | None = None) -> dict:
        """Opens a session (``POST /v1/sessions``); an admin names the agent."""
        body: dict[str, Any] = {"id": session_id}
        if agent:
            body["agent"] = agent
        return self._do("POST", "/v1/sessions", body)

    def session(self, session_id: str) -> dict:
        return self._do("GET", "/v1/sessions/" + _segment("session id", session_id))

    def pause_session(self, session_id: str) -> dict:
        return self._do("POST", "/v1/sessions/" + _segment("session id", session_id) + "/pause")

    def resume_session(self, session_id: str) -> dict:
        return self._do("POST", "/v1/sessions/" + _segment("session id", session_id) + "/resume")

    def close_session(self, session_id: str) -> dict:
        return self._do("POST", "/v1/sessions/" + _segment("session id", session_id) + "/close")

    # -- approvals ---------------------------------------------------------

    def approval(self, ticket: str) -> dict:
        """One ticket (``GET /v1/approvals/{id}``): an agent reads those its
        own actions opened, an approver those it may decide."""
        return self._do("GET", "/v1/approvals/" + _segment("approval ticket", ticket))

    def wait_for_approval(self, ticket: str, *, timeout: float = 300.0, interval: float = 1.0) -> dict:
        """Polls the ticket until someone decides it (or it expires) and
        returns it; its ``status`` says how (``approved``, ``denied``,
        ``expired``). Raises ApprovalTimeout when still pending after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.approval(ticket)
            if t.get("status") != "pending":
                return t
            left = deadline - time.monotonic()
            if left <= 0:
                raise ApprovalTimeout(ticket, timeout)
            time.sleep(min(interval, left))

    def approvals(self, status: str = "pending") -> list[dict]:
        """The tickets the caller may decide (approver or admin)."""
        return (self._do("GET", "/v1/approvals", query={"status": status}) or {}).get("approvals", [])

    def approve(self, ticket: str, note: str = "") -> dict:
        return self._do("POST", "/v1/approvals/" + _segment("approval ticket", ticket) + "/approve", {"note": note})

    def deny(self, ticket: str, note: str = "") -> dict:
        return self._do("POST", "/v1/approvals/" + _segment("approval ticket", ticket) + "/deny", {"note": note})


class AsyncClient:
    """The same surface as Client for asyncio code: each call runs the
    blocking request in a worker thread, so the event loop is never held."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        self.sync = Client(url, token, timeout=timeout)

    def __repr__(self) -> str:
        return f"agentgov.AsyncClient({self.sync.url!r})"

    def __getattr__(self, name: str) -> Any:
        f = getattr(self.sync, name)
        if not callable(f) or name.startswith("_"):
            raise AttributeError(name)
        if name == "wait_for_approval":
            return self._wait_for_approval

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(f, *args, **kwargs)

        return call

    async def _wait_for_approval(self, ticket: str, *, timeout: float = 300.0, interval: float = 1.0) -> dict:
        # Sleeps on the event loop between polls rather than in a thread.
        deadline = time.monotonic() + timeout
        while True:
            t = await asyncio.to_thread(self.sync.approval, ticket)
            if t.get("status") != "pending":
                return t
            left = deadline - time.monotonic()
            if left <= 0:
                raise ApprovalTimeout(ticket, timeout)
            await asyncio.sleep(min(interval, left))


def _error_of(status: int, raw: bytes) -> APIError:
    code, message = "internal", raw[:200].decode("utf-8", "replace")
    try:
        e = json.loads(raw).get("error") or {}
        code = e.get("code") or code
        message = e.get("message") or message
    except (ValueError, AttributeError):
        pass
    return APIError(status, code, message)
