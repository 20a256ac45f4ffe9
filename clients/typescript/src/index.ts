/**
 * The TypeScript client of agentgov's HTTP API: ask for a decision before an
 * agent acts, record what happened after, wait for a person's approval, and
 * wrap tool functions so that they run only when agentgov allows them.
 *
 * No runtime dependencies; Node 20 or newer (the global fetch).
 */

export const version = "0.4.0";

// Answers larger than this are a misbehaving server, not data.
const maxAnswer = 64 << 20;

export type Effect = "allow" | "deny" | "require_approval";

export interface Tool {
  name: string;
  server?: string;
  annotations?: Record<string, unknown>;
}

/** What an agent wants to do (DESIGN §2). Identity comes from the token. */
export interface Action {
  point?: string;
  session?: string;
  tool?: Tool;
  args?: Record<string, unknown>;
  resource?: { type?: string; id?: string; permission?: string };
  destination?: string;
  model?: string;
  content?: string;
  estimate?: { tokens?: number; cost_usd?: number };
  approval_id?: string;
}

export interface Decision {
  id: string;
  effect: Effect;
  flagged?: boolean;
  reasons?: string[];
  rules?: string[];
  severity?: string;
  approval?: { id: string; status: string; expires_at?: string };
  obligations?: Array<Record<string, unknown>>;
  audit_index?: number;
  [key: string]: unknown;
}

export interface Ticket {
  id: string;
  status: "pending" | "approved" | "denied" | "expired" | "used";
  agent_id: string;
  action: Action;
  reasons?: string[];
  [key: string]: unknown;
}

export interface Outcome {
  status: "ok" | "error";
  tokens?: number;
  cost_usd?: number;
  latency_ms?: number;
  error?: string;
}

export interface DecideOptions {
  idempotencyKey?: string;
  traceparent?: string;
  correlationId?: string;
  signal?: AbortSignal;
}

/**
 * The server refused the request. `code` is the server's error code
 * (`bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
 * `unavailable`, ... as docs/api.md lists them); a server that could not be
 * reached at all is `unreachable` with status 0.
 */
export class APIError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`agentgov: ${code} (${status}): ${message}`);
    this.name = "APIError";
  }
}

/** agentgov did not allow the action: the tool function did not run. */
export class Denied extends Error {
  readonly reasons: string[];
  readonly rules: string[];
  constructor(readonly decision: Decision) {
    const reasons = decision.reasons ?? [];
    super(`agentgov: ${decision.effect}: ${reasons.length ? reasons.join("; ") : "no reason given"}`);
    this.name = "Denied";
    this.reasons = [...reasons];
    this.rules = [...(decision.rules ?? [])];
  }
}

/** The action needs a person's approval; `ticket` names the ticket. */
export class ApprovalRequired extends Denied {
  readonly ticket: string;
  constructor(decision: Decision) {
    super(decision);
    this.name = "ApprovalRequired";
    this.ticket = decision.approval?.id ?? "";
  }
}

/** No one decided the ticket within the time the caller waited. */
export class ApprovalTimeout extends Error {
  constructor(
    readonly ticket: string,
    waitedMs: number,
  ) {
    super(`agentgov: approval ticket ${ticket} still pending after ${Math.round(waitedMs / 1000)}s`);
    this.name = "ApprovalTimeout";
  }
}

function segment(what: string, value: string): string {
  // An id goes into a path: one that would change the path is refused here
  // rather than sent somewhere else.
  if (typeof value !== "string" || value === "" || value === "." || value === ".." || value.includes("/")) {
    throw new TypeError(`agentgov: ${what} ${JSON.stringify(value)} is not a valid id`);
  }
  return encodeURIComponent(value);
}

function plainJSON(v: unknown, where: string, depth = 0): void {
  if (depth > 64) throw new TypeError(`agentgov: ${where} nest too deeply`);
  if (v === null || typeof v === "string" || typeof v === "boolean") return;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new TypeError(`agentgov: ${where} hold ${v}, which JSON cannot carry`);
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((x) => plainJSON(x, where, depth + 1));
    return;
  }
  if (typeof v === "object" && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
    // A field set to undefined is absent, in JSON as in the function.
    for (const x of Object.values(v as object)) if (x !== undefined) plainJSON(x, where, depth + 1);
    return;
  }
  throw new TypeError(`agentgov: ${where} hold a ${typeof v === "object" ? (v as object).constructor?.name ?? "object" : typeof v}, which is not JSON`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ClientOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8420. */
  url: string;
  /** The bearer token: an agent's, an approver's or an admin's. */
  token: string;
  /** Bound on each request in milliseconds (default 10 000). */
  timeoutMs?: number;
}

/** Talks to one agentgov server with one token. */
export class Client {
  readonly url: string;
  readonly #token: string;
  readonly timeoutMs: number;

  constructor(opts: ClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new TypeError(`agentgov: server URL ${JSON.stringify(opts.url)} is not a URL`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new TypeError(`agentgov: server URL ${JSON.stringify(opts.url)} is not an http(s) URL`);
    }
    if (!opts.token) throw new TypeError("agentgov: a token is required");
    this.url = opts.url.replace(/\/+$/, "");
    this.#token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async #do<T>(method: string, path: string, body?: unknown, headers?: Record<string, string | undefined>, signal?: AbortSignal): Promise<T> {
    const h: Record<string, string> = {
      authorization: `Bearer ${this.#token}`,
      accept: "application/json",
      "user-agent": `agentgov-typescript/${version}`,
    };
    for (const [k, v] of Object.entries(headers ?? {})) if (v) h[k] = v;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      h["content-type"] = "application/json";
    }
    const timeout = AbortSignal.timeout(this.timeoutMs);
    let res: Response;
    try {
      res = await fetch(this.url + path, { method, headers: h, body: payload, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (e) {
      throw new APIError(0, "unreachable", `${method} ${this.url + path}: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (text.length > maxAnswer) throw new APIError(res.status, "too_large", "the server's answer is over the client's limit");
    if (!res.ok) {
      let code = "internal";
      let message = text.slice(0, 200);
      try {
        const e = JSON.parse(text).error ?? {};
        code = e.code ?? code;
        message = e.message ?? message;
      } catch {
        // not JSON: keep the text
      }
      throw new APIError(res.status, code, message);
    }
    if (text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new APIError(res.status, "internal", "the server's answer is not JSON");
    }
  }

  /**
   * Asks whether the action may happen (POST /v1/decide). A deny or
   * require_approval is an answer, not an error: look at `effect`.
   */
  async decide(action: Action, opts: DecideOptions = {}): Promise<Decision> {
    const d = await this.#do<Decision>(
      "POST",
      "/v1/decide",
      action,
      { "idempotency-key": opts.idempotencyKey, traceparent: opts.traceparent, "x-correlation-id": opts.correlationId },
      opts.signal,
    );
    if (!d || !["allow", "deny", "require_approval"].includes(d.effect)) {
      throw new APIError(200, "internal", "the server's decision has no known effect");
    }
    return d;
  }

  /** Records what happened after an allowed action: settles budgets, feeds SLIs. */
  async outcome(decisionId: string, outcome: Outcome): Promise<void> {
    if (outcome.status !== "ok" && outcome.status !== "error") {
      throw new TypeError(`agentgov: outcome status ${JSON.stringify(outcome.status)} is not ok or error`);
    }
    await this.#do("POST", `/v1/decisions/${segment("decision id", decisionId)}/outcome`, outcome);
  }

  /** A past decision of this agent. */
  decision(decisionId: string): Promise<Decision> {
    return this.#do("GET", `/v1/decisions/${segment("decision id", decisionId)}`);
  }

  /** Opens a session; an admin names the agent. */
  createSession(id: string, agent?: string): Promise<Record<string, unknown>> {
    return this.#do("POST", "/v1/sessions", agent ? { id, agent } : { id });
  }
  session(id: string): Promise<Record<string, unknown>> {
    return this.#do("GET", `/v1/sessions/${segment("session id", id)}`);
  }
  pauseSession(id: string): Promise<Record<string, unknown>> {
    return this.#do("POST", `/v1/sessions/${segment("session id", id)}/pause`);
  }
  resumeSession(id: string): Promise<Record<string, unknown>> {
    return this.#do("POST", `/v1/sessions/${segment("session id", id)}/resume`);
  }
  closeSession(id: string): Promise<Record<string, unknown>> {
    return this.#do("POST", `/v1/sessions/${segment("session id", id)}/close`);
  }

  /** One ticket: an agent reads those its own actions opened, an approver those it may decide. */
  approval(ticket: string): Promise<Ticket> {
    return this.#do("GET", `/v1/approvals/${segment("approval ticket", ticket)}`);
  }

  /**
   * Polls the ticket until someone decides it (or it expires) and returns
   * it; throws ApprovalTimeout when it is still pending after timeoutMs.
   */
  async waitForApproval(ticket: string, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<Ticket> {
    const timeoutMs = opts.timeoutMs ?? 300_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const t = await this.approval(ticket);
      if (t.status !== "pending") return t;
      const left = deadline - Date.now();
      if (left <= 0) throw new ApprovalTimeout(ticket, timeoutMs);
      await sleep(Math.min(opts.intervalMs ?? 1000, left));
    }
  }

  /** The tickets the caller may decide (approver or admin). */
  async approvals(status = "pending"): Promise<Ticket[]> {
    const r = await this.#do<{ approvals?: Ticket[] }>("GET", `/v1/approvals?status=${encodeURIComponent(status)}`);
    return r?.approvals ?? [];
  }
  approve(ticket: string, note = ""): Promise<Ticket> {
    return this.#do("POST", `/v1/approvals/${segment("approval ticket", ticket)}/approve`, { note });
  }
  deny(ticket: string, note = ""): Promise<Ticket> {
    return this.#do("POST", `/v1/approvals/${segment("approval ticket", ticket)}/deny`, { note });
  }
}

export interface GovernedOptions {
  /** The tool's name; the function's name by default. */
  tool?: string;
  session?: string;
  server?: string;
  annotations?: Record<string, unknown>;
  /**
   * The names of the function's positional parameters, in order, to name
   * its arguments in the action. Without them a function of one object
   * parameter sends that object's fields, and others send `arg0`, `arg1`...
   */
  params?: string[];
  /** Wait this long for a person to decide a ticket, then retry once with it. */
  waitMs?: number;
  intervalMs?: number;
}

/**
 * Wraps a tool function so that each call asks agentgov first
 * (pre_tool_call), runs only on allow, records the outcome (ok or error,
 * latency), and otherwise throws Denied (ApprovalRequired for a ticket)
 * carrying the decision's reasons.
 */
export function governed<A extends unknown[], R>(
  client: Client,
  fn: (...args: A) => R | Promise<R>,
  opts: GovernedOptions = {},
): (...args: A) => Promise<R> {
  const name = opts.tool ?? fn.name;
  if (!name) throw new TypeError("agentgov: governed needs a tool name for an anonymous function");
  const argsOf = (args: unknown[]): Record<string, unknown> => {
    let out: Record<string, unknown>;
    if (opts.params) {
      out = {};
      opts.params.forEach((p, i) => {
        if (i < args.length && args[i] !== undefined) out[p] = args[i];
      });
    } else if (args.length === 1 && args[0] !== null && typeof args[0] === "object" && !Array.isArray(args[0])) {
      out = { ...(args[0] as Record<string, unknown>) };
    } else {
      out = Object.fromEntries(args.map((a, i) => [`arg${i}`, a]).filter(([, a]) => a !== undefined));
    }
    // Arguments agentgov cannot read are refused here: a decision on a
    // stand-in for them (NaN sent as null, a Date as a string) would decide
    // something else.
    plainJSON(out, `the arguments of ${name}`);
    return out;
  };
  return async (...args: A): Promise<R> => {
    const action: Action = {
      point: "pre_tool_call",
      tool: { name, ...(opts.server ? { server: opts.server } : {}), ...(opts.annotations ? { annotations: opts.annotations } : {}) },
      args: argsOf(args),
      ...(opts.session ? { session: opts.session } : {}),
    };
    let d = await client.decide(action);
    if (d.effect === "require_approval" && opts.waitMs !== undefined) {
      const ticket = d.approval?.id ?? "";
      const t = await client.waitForApproval(ticket, { timeoutMs: opts.waitMs, intervalMs: opts.intervalMs });
      if (t.status !== "approved") {
        throw new Denied({ ...d, effect: "deny", reasons: [...(d.reasons ?? []), `approval ${ticket} ${t.status}`] });
      }
      d = await client.decide({ ...action, approval_id: ticket });
    }
    if (d.effect === "require_approval") throw new ApprovalRequired(d);
    if (d.effect !== "allow") throw new Denied(d);
    const started = performance.now();
    let result: R;
    try {
      result = await fn(...args);
    } catch (e) {
      const err = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      await client.outcome(d.id, { status: "error", latency_ms: performance.now() - started, error: err.slice(0, 1000) });
      throw e;
    }
    await client.outcome(d.id, { status: "ok", latency_ms: performance.now() - started });
    return result;
  };
}
