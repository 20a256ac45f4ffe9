"""Errors raised by the client: an answer the server refused (APIError, with
the server's error code), and an action agentgov did not allow (Denied)."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """The server answered with an error.

    ``code`` is the server's error code (``bad_request``, ``unauthorized``,
    ``forbidden``, ``not_found``, ``conflict``, ``unavailable``, ... as
    docs/api.md lists them), ``status`` the HTTP status. A failure to reach
    the server at all is ``code == "unreachable"`` with ``status == 0``.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"agentgov: {code} ({status}): {message}")
        self.status = status
        self.code = code
        self.message = message


class Denied(Exception):
    """agentgov did not allow the action: the tool function did not run.

    ``reasons`` are the decision's reasons, ``decision`` the whole decision.
    """

    def __init__(self, decision: "Any") -> None:
        self.decision = decision
        self.reasons: list[str] = list(decision.get("reasons") or [])
        self.rules: list[str] = list(decision.get("rules") or [])
        super().__init__(
            "agentgov: "
            + str(decision.get("effect"))
            + ": "
            + ("; ".join(self.reasons) if self.reasons else "no reason given")
        )


class ApprovalRequired(Denied):
    """The action needs a person's approval. ``ticket`` is the approval
    ticket's id: wait for it (``Client.wait_for_approval``) and call again
    with ``approval_id=ticket``, or let ``governed(wait=...)`` do both."""

    def __init__(self, decision: "Any") -> None:
        super().__init__(decision)
        self.ticket: str = (decision.get("approval") or {}).get("id", "")


class ApprovalTimeout(Exception):
    """No one decided the ticket within the time the caller waited."""

    def __init__(self, ticket: str, waited: float) -> None:
        super().__init__(f"agentgov: approval ticket {ticket} still pending after {waited:.0f}s")
        self.ticket = ticket
