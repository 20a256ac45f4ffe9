// Plays a server that answers an audit entry's page with the inclusion
// proof of another entry, true in itself: the browser must not say the
// entry it shows is verified. Throws (and exits non-zero) when it does.
//
// env: URL, ADMIN (token), ENTRY (the page's index), OTHERS (indexes whose
// proofs are served instead, comma-separated)
import { chromium } from "playwright-core";

const { URL: base, ADMIN, ENTRY, OTHERS } = process.env;
const check = (cond, what) => { if (!cond) throw new Error("does not hold: " + what); };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const results = {};
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(base + "/ui/login");
  await page.getByLabel("Token").fill(ADMIN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL("**/ui/approvals");
  const verify = async () => {
    await page.goto(base + "/ui/audit/" + ENTRY);
    await page.getByRole("button", { name: "Verify inclusion" }).click();
    await page.locator("#verify-result.good, #verify-result.bad").waitFor();
    return page.locator("#verify-result").textContent();
  };
  // The true proof verifies: what follows is refused for what it is.
  results.own = await verify();
  check(results.own.startsWith("Verified"), "the entry's own proof verifies: " + results.own);
  for (const other of OTHERS.split(",")) {
    await page.route(`**/ui/audit/${ENTRY}/proof`, async (route) => {
      const res = await route.fetch({ url: `${base}/ui/audit/${other}/proof` });
      await route.fulfill({ response: res, body: await res.text() });
    });
    results["proof of " + other] = await verify();
    check(results["proof of " + other].startsWith("Not verified"), `entry ${ENTRY} with the proof of entry ${other}: ` + results["proof of " + other]);
    await page.unrouteAll();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
