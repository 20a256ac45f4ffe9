"""agentgov: the Python client of agentgov's HTTP API.

Ask for a decision before an agent acts, record what happened after, wait for
a person's approval, and wrap tool functions so that they run only when
agentgov allows them::

    from agentgov import Client, governed, Denied

    client = Client("http://127.0.0.1:8420", token="agent-secret")

    @governed(client)
    def send_email(to: str, subject: str, body: str) -> str:
        ...

Standard library only; Python 3.10 or newer.
"""

from ._client import (
    AsyncClient,
    Client,
    Decision,
    __version__,
)
from ._errors import APIError, ApprovalRequired, Denied, ApprovalTimeout
from ._governed import governed

__all__ = [
    "APIError",
    "ApprovalRequired",
    "ApprovalTimeout",
    "AsyncClient",
    "Client",
    "Decision",
    "Denied",
    "governed",
    "__version__",
]
