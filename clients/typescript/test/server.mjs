// Starts a real agentgov server for the tests: the binary named by
// AGENTGOV_BIN, or one built from this checkout with `go build`.
import { spawn, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const tokens = { admin: "ts-admin-secret", approver: "ts-fin-secret", agent: "ts-agent-secret", other: "ts-other-secret" };
const sha = (s) => createHash("sha256").update(s).digest("hex");

export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "agentgov-ts-"));
  let bin = process.env.AGENTGOV_BIN;
  if (!bin) {
    bin = join(dir, "agentgov");
    execFileSync("go", ["build", "-o", bin, "./cmd/agentgov"], { cwd: root, stdio: "inherit" });
  }
  const cfg = join(dir, "agentgov.yaml");
  writeFileSync(
    cfg,
    "tokens:\n" +
      `  - {name: ops, role: admin, sha256: "${sha(tokens.admin)}"}\n` +
      `  - {name: fin, role: approver, groups: [finance], sha256: "${sha(tokens.approver)}"}\n` +
      `  - {name: a1, role: agent, agent: a1, principal: {user: alice, team: t, org: acme}, sha256: "${sha(tokens.agent)}"}\n` +
      `  - {name: a2, role: agent, agent: a2, principal: {user: bob, team: t, org: acme}, sha256: "${sha(tokens.other)}"}\n`,
  );
  const proc = spawn(bin, ["serve", "--config", cfg, "--data", join(dir, "data"), "--addr", "127.0.0.1:0", "--log-format", "json"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const url = await new Promise((resolveURL, reject) => {
    const timer = setTimeout(() => reject(new Error("agentgov serve did not start: " + log)), 60_000);
    proc.stderr.on("data", (chunk) => {
      log += chunk;
      for (const line of log.split("\n")) {
        try {
          const rec = JSON.parse(line);
          if (rec.msg === "agentgov serving") {
            clearTimeout(timer);
            resolveURL(rec.addr);
          }
        } catch {
          // a partial line
        }
      }
    });
    proc.on("exit", (code) => reject(new Error(`agentgov serve exited ${code}: ${log}`)));
  });
  return {
    url,
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
