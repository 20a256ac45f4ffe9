// The client against a running agentgov server on its built-in policy.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Client, governed, APIError, Denied, ApprovalRequired, ApprovalTimeout, version } from "../dist/index.js";
import { startServer, tokens } from "./server.mjs";

let srv, agent, approver;
before(async () => {
  srv = await startServer();
  agent = new Client({ url: srv.url, token: tokens.agent });
  approver = new Client({ url: srv.url, token: tokens.approver });
});
after(() => srv.stop());

async function audit(kind) {
  const out = [];
  for (let after = -1; ; ) {
    const r = await fetch(`${srv.url}/v1/audit?after=${after}&limit=1000`, { headers: { authorization: `Bearer ${tokens.admin}` } });
    const page = (await r.json()).entries;
    if (page.length === 0) return out;
    out.push(...page.filter((e) => e.kind === kind));
    after = page.at(-1).index;
  }
}
const outcomesOf = async (id) => (await audit("outcome")).filter((e) => e.record.decision === id).map((e) => e.record.outcome);

const PAY = { tool: { name: "send_money" }, args: { amount: 5000, recipient: "ACME Ltd" } };
const SECRET = { tool: { name: "read_file" }, args: { path: "/home/alice/.ssh/id_rsa" } };

async function pendingTicket(tool, amount) {
  for (let i = 0; i < 600; i++) {
    const t = (await approver.approvals("pending")).find((t) => t.tool.name === tool && t.action.args.amount === amount);
    if (t) return t;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("no pending ticket");
}

test("effects come back as answers", async () => {
  assert.equal((await agent.decide({ tool: { name: "read_file" }, args: { path: "/tmp/n.txt" } })).effect, "allow");
  const d = await agent.decide(SECRET);
  assert.equal(d.effect, "deny");
  assert.ok(d.reasons.length > 0);
  assert.match((await agent.decide(PAY)).approval.id, /^apr_/);
});

test("errors carry the server's code", async () => {
  await assert.rejects(new Client({ url: srv.url, token: "nope" }).decide(PAY), (e) => e instanceof APIError && e.status === 401 && e.code === "unauthorized");
  await assert.rejects(agent.decide({ tool: { name: "x" }, point: "no_such_point" }), (e) => e.code === "bad_request");
  await assert.rejects(agent.approvals(), (e) => e.code === "forbidden");
  await assert.rejects(new Client({ url: "http://127.0.0.1:1", token: "t", timeoutMs: 2000 }).decide(PAY), (e) => e.code === "unreachable");
});

test("an id cannot change the path", async () => {
  for (const bad of ["../kill", "a/b", "", ".."]) assert.throws(() => agent.decision(bad), TypeError);
});

test("an outcome is recorded once", async () => {
  const d = await agent.decide({ tool: { name: "search" }, args: { q: "x" } });
  await agent.outcome(d.id, { status: "ok", tokens: 10 });
  await assert.rejects(agent.outcome(d.id, { status: "ok" }), (e) => e.code === "conflict");
  assert.equal((await outcomesOf(d.id))[0].status, "ok");
});

test("sessions", async () => {
  assert.equal((await agent.createSession("ts-s1")).state, "created");
  assert.equal((await agent.decide({ session: "ts-s1", tool: { name: "search" }, args: {} })).effect, "allow");
  assert.equal((await agent.pauseSession("ts-s1")).state, "paused");
  assert.equal((await agent.decide({ session: "ts-s1", tool: { name: "search" }, args: {} })).effect, "deny");
  await agent.resumeSession("ts-s1");
  assert.equal((await agent.decide({ session: "ts-s1", tool: { name: "search" }, args: {} })).effect, "allow");
  await assert.rejects(new Client({ url: srv.url, token: tokens.other }).session("ts-s1"), (e) => e.code === "not_found");
});

test("only the asking agent reads its ticket, and waiting gives up", async () => {
  const ticket = (await agent.decide(PAY)).approval.id;
  assert.equal((await agent.approval(ticket)).status, "pending");
  await assert.rejects(new Client({ url: srv.url, token: tokens.other }).approval(ticket), (e) => e.code === "not_found");
  await assert.rejects(agent.approve(ticket), (e) => e.code === "forbidden");
  await assert.rejects(agent.waitForApproval(ticket, { timeoutMs: 300, intervalMs: 100 }), ApprovalTimeout);
});

test("governed: an allowed call runs and its outcome is recorded", async () => {
  const search = governed(agent, async function search({ q, limit }) {
    return Array(limit).fill(q);
  });
  assert.deepEqual(await search({ q: "y", limit: 2 }), ["y", "y"]);
  const dec = (await audit("decision")).filter((e) => e.record.action.tool?.name === "search" && e.record.action.args?.q === "y");
  assert.equal(dec.length, 1);
  assert.equal((await outcomesOf(dec[0].record.decision.id))[0].status, "ok");
});

test("governed: a denied call does not run", async () => {
  const ran = [];
  const readFile = governed(agent, (path) => ran.push(path), { tool: "read_file", params: ["path"] });
  await assert.rejects(readFile("/home/alice/.ssh/id_rsa"), (e) => e instanceof Denied && e.reasons.length > 0 && !(e instanceof ApprovalRequired));
  assert.deepEqual(ran, []);
});

test("governed: approval without waiting throws with the ticket", async () => {
  const pay = governed(agent, () => assert.fail("ran"), { tool: "send_money", params: ["amount", "recipient"] });
  await assert.rejects(pay(9000, "ACME Ltd"), (e) => e instanceof ApprovalRequired && e.ticket.startsWith("apr_"));
});

test("governed: an approved retry runs once, a denied ticket throws", async () => {
  const ran = [];
  const pay = governed(agent, (amount, recipient) => (ran.push([amount, recipient]), "sent"), {
    tool: "send_money",
    params: ["amount", "recipient"],
    waitMs: 60_000,
    intervalMs: 50,
  });
  const call = pay(5001, "ACME Ltd");
  const t = await pendingTicket("send_money", 5001);
  await approver.approve(t.id, "invoice 7731");
  assert.equal(await call, "sent");
  assert.deepEqual(ran, [[5001, "ACME Ltd"]]);
  const again = await agent.decide({ tool: { name: "send_money" }, args: { amount: 5001, recipient: "ACME Ltd" }, approval_id: t.id });
  assert.equal(again.effect, "deny");
  assert.match(again.reasons.join(" "), /already_used/);

  // The rejection is awaited from the start: the wait may see the denial
  // before the approver's own request has returned.
  const refused = assert.rejects(pay(7001, "ACME Ltd"), (e) => e instanceof Denied && !(e instanceof ApprovalRequired));
  const t2 = await pendingTicket("send_money", 7001);
  await approver.deny(t2.id, "no");
  await refused;
  assert.equal(ran.length, 1);
});

test("governed: a failure is recorded and thrown", async () => {
  const fetchPage = governed(agent, async () => {
    throw new Error("upstream down");
  }, { tool: "fetch_page", params: ["url"] });
  await assert.rejects(fetchPage("https://example.org/b"), /upstream down/);
  const dec = (await audit("decision")).filter((e) => e.record.action.args?.url === "https://example.org/b");
  const o = (await outcomesOf(dec.at(-1).record.decision.id))[0];
  assert.equal(o.status, "error");
  assert.match(o.error, /upstream down/);
});

test("governed: arguments agentgov cannot read are refused before deciding", async () => {
  const store = governed(agent, () => assert.fail("ran"), { tool: "store", params: ["n"] });
  await assert.rejects(store(Number.NaN), TypeError);
  await assert.rejects(store(10n), TypeError);
  await assert.rejects(store(new Date()), TypeError);
});

test("the version is the server's", () => {
  const root = new URL("../../../", import.meta.url);
  const want = readFileSync(new URL("VERSION", root), "utf8").trim();
  assert.equal(version, want);
  assert.equal(JSON.parse(readFileSync(new URL("clients/typescript/package.json", root), "utf8")).version, want);
});
