"""The client against a running agentgov server on its built-in policy."""

from __future__ import annotations

import asyncio
import sys
import threading
import unittest
import urllib.request
import json
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

import agentgov  # noqa: E402
from agentgov import APIError, ApprovalRequired, ApprovalTimeout, AsyncClient, Client, Denied, governed  # noqa: E402

from server import TOKENS, Server  # noqa: E402

srv: Server


def setUpModule() -> None:
    global srv
    srv = Server()


def tearDownModule() -> None:
    srv.stop()


def audit(kind: str) -> list[dict]:
    out, after = [], -1
    while True:
        req = urllib.request.Request(f"{srv.url}/v1/audit?after={after}&limit=1000",
                                     headers={"Authorization": "Bearer " + TOKENS["admin"]})
        with urllib.request.urlopen(req) as r:
            page = json.load(r)["entries"]
        if not page:
            return out
        out += [e for e in page if e["kind"] == kind]
        after = page[-1]["index"]


def outcomes_of(decision_id: str) -> list[dict]:
    return [e["record"]["outcome"] for e in audit("outcome") if e["record"]["decision"] == decision_id]


PAY = {"tool": {"name": "send_money"}, "args": {"amount": 5000, "recipient": "ACME Ltd"}}
SECRET = {"tool": {"name": "read_file"}, "args": {"path": "/home/alice/.ssh/id_rsa"}}


class DecideTest(unittest.TestCase):
    def setUp(self) -> None:
        self.agent = Client(srv.url, TOKENS["agent"])

    def test_effects_come_back_as_answers(self) -> None:
        self.assertTrue(self.agent.decide({"tool": {"name": "read_file"}, "args": {"path": "/tmp/n.txt"}}).allowed)
        d = self.agent.decide(SECRET)
        self.assertEqual(d.effect, "deny")
        self.assertTrue(d.reasons)
        d = self.agent.decide(PAY)
        self.assertEqual(d.effect, "require_approval")
        self.assertTrue(d.ticket.startswith("apr_"))

    def test_errors_carry_the_servers_code(self) -> None:
        with self.assertRaises(APIError) as e:
            Client(srv.url, "not-a-token").decide(PAY)
        self.assertEqual((e.exception.status, e.exception.code), (401, "unauthorized"))
        with self.assertRaises(APIError) as e:
            self.agent.decide({"tool": {"name": "x"}, "point": "no_such_point"})
        self.assertEqual(e.exception.code, "bad_request")
        with self.assertRaises(APIError) as e:
            self.agent.approvals()
        self.assertEqual(e.exception.code, "forbidden")
        with self.assertRaises(APIError) as e:
            Client("http://127.0.0.1:1", TOKENS["agent"], timeout=2).decide(PAY)
        self.assertEqual(e.exception.code, "unreachable")

    def test_an_id_cannot_change_the_path(self) -> None:
        for bad in ("../kill", "a/b", "", ".."):
            with self.assertRaises(ValueError):
                self.agent.decision(bad)

    def test_outcome_is_recorded_once(self) -> None:
        d = self.agent.decide({"tool": {"name": "search"}, "args": {"q": "x"}})
        self.agent.outcome(d.id, "ok", tokens=10, latency_ms=3)
        with self.assertRaises(APIError) as e:
            self.agent.outcome(d.id, "ok")
        self.assertEqual(e.exception.code, "conflict")
        self.assertEqual(outcomes_of(d.id)[0]["status"], "ok")
        with self.assertRaises(ValueError):
            self.agent.outcome(d.id, "fine")

    def test_sessions(self) -> None:
        self.assertEqual(self.agent.create_session("py-s1")["state"], "created")
        # A session becomes active with its first decision.
        self.assertTrue(self.agent.decide({"session": "py-s1", "tool": {"name": "search"}, "args": {"q": "x"}}).allowed)
        self.assertEqual(self.agent.pause_session("py-s1")["state"], "paused")
        d = self.agent.decide({"session": "py-s1", "tool": {"name": "search"}, "args": {"q": "x"}})
        self.assertEqual(d.effect, "deny")
        self.agent.resume_session("py-s1")
        self.assertTrue(self.agent.decide({"session": "py-s1", "tool": {"name": "search"}, "args": {"q": "x"}}).allowed)
        with self.assertRaises(APIError) as e:
            Client(srv.url, TOKENS["other"]).session("py-s1")
        self.assertEqual(e.exception.code, "not_found")


class ApprovalTest(unittest.TestCase):
    def setUp(self) -> None:
        self.agent = Client(srv.url, TOKENS["agent"])
        self.approver = Client(srv.url, TOKENS["approver"])

    def test_only_the_asking_agent_reads_its_ticket(self) -> None:
        ticket = self.agent.decide(PAY).ticket
        self.assertEqual(self.agent.approval(ticket)["status"], "pending")
        with self.assertRaises(APIError) as e:
            Client(srv.url, TOKENS["other"]).approval(ticket)
        self.assertEqual(e.exception.code, "not_found")
        with self.assertRaises(APIError) as e:
            self.agent.approve(ticket)
        self.assertEqual(e.exception.code, "forbidden")

    def test_waiting_gives_up_after_its_timeout(self) -> None:
        ticket = self.agent.decide(PAY).ticket
        with self.assertRaises(ApprovalTimeout):
            self.agent.wait_for_approval(ticket, timeout=0.3, interval=0.1)

    def test_an_approved_retry_runs_once(self) -> None:
        ran = []

        @governed(self.agent, tool="send_money", wait=60, interval=0.05)
        def send_money(amount: int, recipient: str) -> str:
            ran.append((amount, recipient))
            return "sent"

        result: list = []
        t = threading.Thread(target=lambda: result.append(send_money(5000, recipient="ACME Ltd")))
        t.start()
        ticket = self._pending_ticket("send_money")
        self.approver.approve(ticket["id"], "invoice 7731")
        t.join(60)
        self.assertEqual(result, ["sent"])
        self.assertEqual(ran, [(5000, "ACME Ltd")])
        # The ticket was used: the same call with it is refused.
        d = self.agent.decide(dict(PAY, approval_id=ticket["id"]))
        self.assertEqual(d.effect, "deny")
        self.assertIn("already_used", " ".join(d.reasons))

    def test_a_denied_ticket_raises_denied(self) -> None:
        @governed(self.agent, tool="send_money", wait=60, interval=0.05)
        def send_money(amount: int, recipient: str) -> str:
            raise AssertionError("ran without approval")

        errs: list = []

        def call() -> None:
            try:
                send_money(7000, "ACME Ltd")
            except Denied as e:
                errs.append(e)

        t = threading.Thread(target=call)
        t.start()
        ticket = self._pending_ticket("send_money", amount=7000)
        self.approver.deny(ticket["id"], "no")
        t.join(60)
        self.assertEqual(len(errs), 1)
        self.assertNotIsInstance(errs[0], ApprovalRequired)

    def _pending_ticket(self, tool: str, amount: int = 5000) -> dict:
        for _ in range(600):
            for t in self.approver.approvals("pending"):
                if t["tool"]["name"] == tool and t["action"]["args"].get("amount") == amount:
                    return t
            threading.Event().wait(0.05)
        self.fail("no pending ticket")


class GovernedTest(unittest.TestCase):
    def setUp(self) -> None:
        self.agent = Client(srv.url, TOKENS["agent"])

    def test_allowed_call_runs_and_its_outcome_is_recorded(self) -> None:
        @governed(self.agent)
        def search(q: str, limit: int = 5) -> list:
            return [q] * limit

        self.assertEqual(search("x", limit=2), ["x", "x"])
        decisions = [e["record"] for e in audit("decision") if e["record"]["action"].get("tool", {}).get("name") == "search"
                     and e["record"]["action"].get("args") == {"q": "x", "limit": 2}]
        self.assertEqual(len(decisions), 1)
        self.assertEqual(outcomes_of(decisions[0]["decision"]["id"])[0]["status"], "ok")

    def test_denied_call_does_not_run(self) -> None:
        ran = []

        @governed(self.agent)
        def read_file(path: str) -> str:
            ran.append(path)
            return ""

        with self.assertRaises(Denied) as e:
            read_file("/home/alice/.ssh/id_rsa")
        self.assertEqual(ran, [])
        self.assertTrue(e.exception.reasons)
        self.assertEqual(e.exception.decision["effect"], "deny")

    def test_approval_without_waiting_raises_with_the_ticket(self) -> None:
        @governed(self.agent, tool="send_money")
        def pay(amount: int, recipient: str) -> None:
            raise AssertionError("ran without approval")

        with self.assertRaises(ApprovalRequired) as e:
            pay(9000, "ACME Ltd")
        self.assertTrue(e.exception.ticket.startswith("apr_"))

    def test_failure_is_recorded_and_raised(self) -> None:
        @governed(self.agent, tool="fetch_page")
        def fetch(url: str) -> str:
            raise ConnectionError("upstream down")

        with self.assertRaises(ConnectionError):
            fetch("https://example.org/a")
        decisions = [e["record"] for e in audit("decision") if e["record"]["action"].get("args") == {"url": "https://example.org/a"}]
        o = outcomes_of(decisions[-1]["decision"]["id"])[0]
        self.assertEqual(o["status"], "error")
        self.assertIn("upstream down", o["error"])

    def test_arguments_agentgov_cannot_read_are_refused_before_deciding(self) -> None:
        @governed(self.agent)
        def store(blob: object) -> None:
            raise AssertionError("ran")

        with self.assertRaises(TypeError):
            store(object())

    def test_async(self) -> None:
        aclient = AsyncClient(srv.url, TOKENS["agent"])

        @governed(aclient)
        async def lookup(key: str) -> str:
            await asyncio.sleep(0)
            return key.upper()

        @governed(aclient, tool="read_file")
        async def read(path: str) -> str:
            raise AssertionError("ran")

        async def main() -> None:
            self.assertEqual(await lookup("k"), "K")
            with self.assertRaises(Denied):
                await read("/home/alice/.ssh/id_rsa")
            d = await aclient.decide(PAY)
            with self.assertRaises(ApprovalTimeout):
                await aclient.wait_for_approval(d.ticket, timeout=0.2, interval=0.05)

        asyncio.run(main())


class VersionTest(unittest.TestCase):
    def test_version_is_the_servers(self) -> None:
        root = pathlib.Path(__file__).resolve().parents[3]
        self.assertEqual(agentgov.__version__, (root / "VERSION").read_text().strip())


if __name__ == "__main__":
    unittest.main()
