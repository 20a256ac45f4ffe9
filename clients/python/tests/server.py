"""Starts a real agentgov server for the tests: the binary named by
AGENTGOV_BIN, or one built from this checkout with `go build`."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[3]

TOKENS = {
    "admin": "py-admin-secret",
    "approver": "py-fin-secret",
    "agent": "py-agent-secret",
    "other": "py-other-secret",
}


def _sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


class Server:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="agentgov-py-")
        binary = os.environ.get("AGENTGOV_BIN")
        if not binary:
            binary = os.path.join(self.dir, "agentgov")
            subprocess.run(["go", "build", "-o", binary, "./cmd/agentgov"], cwd=ROOT, check=True)
        cfg = os.path.join(self.dir, "agentgov.yaml")
        with open(cfg, "w") as f:
            f.write(
                "tokens:\n"
                f'  - {{name: ops, role: admin, sha256: "{_sha(TOKENS["admin"])}"}}\n'
                f'  - {{name: fin, role: approver, groups: [finance], sha256: "{_sha(TOKENS["approver"])}"}}\n'
                f'  - {{name: a1, role: agent, agent: a1, principal: {{user: alice, team: t, org: acme}}, sha256: "{_sha(TOKENS["agent"])}"}}\n'
                f'  - {{name: a2, role: agent, agent: a2, principal: {{user: bob, team: t, org: acme}}, sha256: "{_sha(TOKENS["other"])}"}}\n'
            )
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", cfg, "--data", os.path.join(self.dir, "data"),
             "--addr", "127.0.0.1:0", "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=self.log,
        )
        self.url = self._wait_for_address()

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("agentgov serve exited: " + self._log())
            self.log.seek(0)
            for line in self.log:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("msg") == "agentgov serving":
                    return rec["addr"]
            time.sleep(0.05)
        raise RuntimeError("agentgov serve did not start: " + self._log())

    def _log(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
