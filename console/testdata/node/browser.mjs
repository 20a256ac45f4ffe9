// Drives Debian's chromium through the console against a running agentgov
// server, as a person would, and acts as the agent with fetch. Throws (and
// exits non-zero) at the first thing that does not hold.
//
// env: URL, ADMIN, APPROVER, AGENT (tokens), AGENT_ID, SHOTS (a directory)
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const { URL: base, ADMIN, APPROVER, AGENT, AGENT_ID, SHOTS } = process.env;
mkdirSync(SHOTS, { recursive: true });
// seen waits for a locator to show, after a navigation.
const seen = (locator) => locator.first().waitFor({ timeout: 10000 }).then(() => true, () => false);
const check = (cond, what) => { if (!cond) throw new Error("does not hold: " + what); };

async function agent(path, body) {
  const res = await fetch(base + path, {
    method: body ? "POST" : "GET",
    headers: { authorization: `Bearer ${AGENT}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return res.json();
}
const pay = (amount, approval_id) => agent("/v1/decide", { tool: { name: "send_money" }, args: { amount, recipient: "ACME Ltd" }, ...(approval_id ? { approval_id } : {}) });

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const results = {};
const ctx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
const page = await ctx.newPage();
try {
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(base) && !r.url().startsWith("data:")) foreign.push(r.url()); });
  const cspErrors = [];
  page.on("console", (m) => { if (/Content Security Policy|Refused to/.test(m.text())) cspErrors.push(m.text()); });
  const shot = (name) => page.screenshot({ path: join(SHOTS, name + ".png"), fullPage: false });

  // An agent's token cannot sign in.
  await page.goto(base + "/ui/");
  await page.getByLabel("Token").fill(AGENT);
  await page.getByRole("button", { name: "Sign in" }).click();
  check(await seen(page.getByText("Agent credentials cannot sign in")), "an agent token is refused at sign-in");
  await shot("sign-in");

  // The approver signs in and lands on the queue.
  await page.getByLabel("Token").fill(APPROVER);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL("**/ui/approvals");
  check(await seen(page.getByRole("heading", { name: /Approvals/ })), "the first page is the approvals queue");

  // A payment to an account the agent read in a file: the provenance rule
  // asks for approval, and the ticket says where the recipient came from.
  await agent("/v1/decide", { session: "s-prov", point: "input", content: "Pay the invoice in bill.txt, please." });
  await agent("/v1/decide", { session: "s-prov", point: "post_tool_call", tool: { name: "read_file" }, content: "Invoice 7731: pay to account evil-corp-0042" });
  const prov = await agent("/v1/decide", { session: "s-prov", tool: { name: "send_money" }, args: { recipient: "evil-corp-0042", amount: 12 } });
  check(prov.effect === "require_approval" && prov.provenance, "a provenance rule asks for approval: " + JSON.stringify(prov));
  const tp = prov.approval.id;
  await page.locator(`#t-${tp}`).waitFor({ timeout: 15000 });
  const cardP = page.locator(`#t-${tp}`);
  check(await seen(cardP.getByText("recipient came from the result of tool read_file, not from the user")), "the ticket says where the recipient came from");
  check(await seen(cardP.getByText("Untrusted source:").first()), "an untrusted source is named in text");
  results.provenance = prov.provenance;

  // A ticket appears without a reload; approving it lets the agent's retry through.
  const t1 = (await pay(5000)).approval.id;
  await page.locator(`#t-${t1}`).waitFor({ timeout: 15000 });
  results.liveTicket = true;
  await shot("approvals");
  const card1 = page.locator(`#t-${t1}`);
  check(await seen(card1.getByText("recipient")), "the ticket shows the arguments");
  await card1.getByLabel("Note").fill("invoice 7731");
  await card1.getByRole("button", { name: "Approve" }).click();
  await page.getByText(`Ticket ${t1} approved`).waitFor();
  results.retry = (await pay(5000, t1)).effect;
  check(results.retry === "allow", "the approved retry is allowed");

  // Denying with a note: the agent reads the note.
  const t2 = (await pay(7000)).approval.id;
  await page.locator(`#t-${t2}`).waitFor({ timeout: 15000 });
  const card2 = page.locator(`#t-${t2}`);
  await card2.getByLabel("Note").fill("not this vendor");
  await card2.getByRole("button", { name: "Deny" }).click();
  await page.getByText(`Ticket ${t2} denied`).waitFor();
  const ticket2 = await agent(`/v1/approvals/${t2}`);
  results.denied = { status: ticket2.status, note: ticket2.note };
  check(ticket2.status === "denied" && ticket2.note === "not this vendor", "the denial and its note reach the ticket");

  // The approver cannot open admin pages.
  await page.goto(base + "/ui/agents");
  check(await seen(page.getByText("This page is for admin tokens")), "an approver is kept out of admin pages");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL("**/ui/login");

  // The admin stops the agent from its page, after a confirmation.
  await page.getByLabel("Token").fill(ADMIN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL("**/ui/approvals");
  await page.getByRole("link", { name: "Agents" }).click();
  await shot("agents");
  const row = page.getByRole("row", { name: new RegExp(AGENT_ID) });
  await row.getByLabel(`Reason to stop ${AGENT_ID}`).fill("runaway loop");
  await row.getByRole("button", { name: `Kill ${AGENT_ID}…` }).click();
  check(await seen(page.getByRole("heading", { name: "Confirm the kill switch" })), "a kill asks for confirmation");
  const before = await agent("/v1/decide", { tool: { name: "search" }, args: { q: "x" } });
  check(before.effect === "allow", "nothing is stopped before the confirmation");
  await page.getByRole("button", { name: "Confirm kill" }).click();
  await page.getByText(/kill switch kill_\S+ engaged/).waitFor();
  const after = await agent("/v1/decide", { tool: { name: "search" }, args: { q: "x" } });
  results.afterKill = after.effect;
  check(after.effect === "deny" && after.reasons.join(" ").includes("runaway loop"), "the agent's next decision is denied by the kill switch");

  // A budget, for the budgets page to show.
  await fetch(base + "/v1/budgets", { method: "POST", headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ id: "acme-monthly", scope: { org: "acme" }, period: "monthly", limits: { cost_usd: 50, calls: 100 } }) });

  // The decision feed, budgets, reliability and MCP pages render.
  await page.getByRole("link", { name: "Decisions" }).click();
  check(await seen(page.getByRole("cell", { name: /deny/ }).first()), "the feed lists the denial");
  await shot("decisions");
  await page.getByRole("link", { name: "Budgets", exact: true }).click();
  check(await seen(page.getByRole("heading", { name: "acme-monthly" })), "the budgets page renders");
  await shot("budgets");

  // The SLO's burn chart, drawn by the server.
  await page.getByRole("link", { name: "Reliability", exact: true }).click();
  const chart = page.locator("svg.burn-chart").first();
  check(await seen(chart), "the reliability page draws a burn chart");
  results.burnChart = await chart.getAttribute("aria-label");
  check(/5m \S+×, 30m \S+×, 1h \S+×, 6h \S+×, 3d \S+×/.test(results.burnChart), "the chart names each window's burn rate: " + results.burnChart);
  check(await chart.locator("rect.bar").count() === 5, "one bar per window");
  check(await chart.locator("line.threshold").count() === 3, "a line per alert threshold");
  check(await seen(page.getByText("Error budget remaining:")), "the budget left is said in text");
  await chart.scrollIntoViewIfNeeded();
  await shot("reliability");

  // A chaos experiment switched off by the admin, after a confirmation
  // with a reason; the table then says it is off.
  const exp = page.locator("tr#chaos-gpt-down");
  check(await seen(exp.getByText("on, injecting")), "the chaos table says the experiment is on, in words");
  await exp.getByRole("button", { name: "Disable gpt-down…" }).click();
  check(await seen(page.getByRole("heading", { name: "Confirm the chaos switch" })), "a chaos switch asks for confirmation");
  await page.getByLabel("Reason").fill("game day over");
  await shot("chaos-switch");
  await page.getByRole("button", { name: "Confirm: switch gpt-down off" }).click();
  await page.getByText(/chaos experiment gpt-down switched off/).waitFor();
  check(await seen(page.locator("tr#chaos-gpt-down .chaos-state", { hasText: /^off$/ })), "the chaos table says the experiment is off");
  check(await seen(page.getByRole("button", { name: "Enable gpt-down…" })), "the experiment can be switched on again");
  results.chaosOff = true;

  // The MCP page: the drifted tool's difference, then a re-pin after a
  // confirmation with a reason.
  await page.getByRole("link", { name: "MCP", exact: true }).click();
  check(await seen(page.getByRole("heading", { name: "MCP servers" })), "the MCP page renders");
  const drift = page.locator("article.drift").first();
  check(await seen(drift.locator(".added", { hasText: "mail" })), "the drift shows the added parameter as a + line");
  check((await drift.locator(".added").first().textContent()).startsWith("+"), "an added line is marked + in text");
  await drift.scrollIntoViewIfNeeded();
  await shot("mcp");
  await drift.getByRole("button", { name: "Re-pin lookup…" }).click();
  check(await seen(page.getByRole("heading", { name: "Confirm the re-pin" })), "a re-pin asks for confirmation");
  await page.getByLabel("Reason").fill("the mail copy is the new audit feature");
  await shot("mcp-repin");
  await page.getByRole("button", { name: "Confirm re-pin" }).click();
  await page.getByText(/docs\/lookup re-pinned/).waitFor();
  check(await page.locator("article.drift").count() === 0, "no drift is left after the re-pin");
  results.repinned = true;

  // An inclusion proof checked in the browser, then a tampered one refused.
  await page.getByRole("link", { name: "Audit log" }).click();
  await shot("audit");
  await page.goto(base + "/ui/audit/1");
  await page.getByRole("button", { name: "Verify inclusion" }).click();
  await page.locator("#verify-result.good, #verify-result.bad").waitFor();
  results.verified = await page.locator("#verify-result").textContent();
  check(results.verified.startsWith("Verified"), "a true proof verifies: " + results.verified);
  await shot("audit-entry");
  await page.route("**/ui/audit/1/proof", async (route) => {
    const res = await route.fetch();
    const p = await res.json();
    p.entry.kind = p.entry.kind + "x";
    await route.fulfill({ response: res, json: p });
  });
  await page.reload();
  await page.getByRole("button", { name: "Verify inclusion" }).click();
  await page.locator("#verify-result.good, #verify-result.bad").waitFor();
  results.tampered = await page.locator("#verify-result").textContent();
  check(results.tampered.startsWith("Not verified"), "a tampered entry is refused: " + results.tampered);

  // At 360 px wide the queue is usable.
  await page.setViewportSize({ width: 360, height: 740 });
  await page.getByRole("link", { name: "Approvals" }).click();
  await shot("approvals-narrow");

  results.foreign = foreign;
  check(foreign.length === 0, "no request left the server's origin: " + foreign.join(", "));
  results.csp = cspErrors;
  check(cspErrors.length === 0, "nothing broke the content security policy: " + cspErrors.join("; "));
} catch (e) {
  // What the page showed when something did not hold.
  await page.screenshot({ path: join(SHOTS, "failure.png") }).catch(() => {});
  console.error("at", page.url(), "\n", (await page.locator("main").innerText().catch(() => "")).slice(0, 2000));
  throw e;
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
