// The console's progressive enhancement: every page works without this
// script; with it, the queue and the decision feed update live, the queue
// answers to the keyboard, and an audit entry can be checked in the browser.
"use strict";

function parseHTML(html) {
  const t = document.createElement("template");
  t.innerHTML = html;
  return t.content;
}

// --- the approvals queue --------------------------------------------------

function liveQueue() {
  const queue = document.getElementById("queue");
  if (!queue || !window.EventSource) return;
  let first = true;
  const es = new EventSource(queue.dataset.live);
  es.addEventListener("queue", async () => {
    if (first) { first = false; return; }
    const res = await fetch(queue.dataset.refresh + "?part=1", { credentials: "same-origin" });
    if (!res.ok) return;
    const current = document.getElementById("queue");
    // Keep what the person was typing and where they were.
    const notes = {};
    current.querySelectorAll("input[name=note]").forEach((i) => { if (i.value) notes[i.id] = i.value; });
    const focused = document.activeElement && document.activeElement.id;
    const fresh = parseHTML(await res.text()).getElementById("queue");
    if (!fresh) return;
    current.replaceWith(fresh);
    for (const [id, v] of Object.entries(notes)) { const i = document.getElementById(id); if (i) i.value = v; }
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  });
}

function queueKeys() {
  document.addEventListener("keydown", (e) => {
    if (!document.getElementById("queue")) return;
    const tag = (e.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || e.ctrlKey || e.metaKey || e.altKey) return;
    const tickets = [...document.querySelectorAll(".ticket")];
    if (!tickets.length) return;
    let i = tickets.findIndex((t) => t.classList.contains("current"));
    const select = (j) => {
      tickets.forEach((t) => t.classList.remove("current"));
      const t = tickets[Math.max(0, Math.min(j, tickets.length - 1))];
      t.classList.add("current");
      t.focus();
    };
    switch (e.key) {
      case "j": select(i + 1); break;
      case "k": select(i < 0 ? 0 : i - 1); break;
      case "a": if (i >= 0) tickets[i].querySelector("button.approve").click(); break;
      case "d": if (i >= 0) tickets[i].querySelector("button.deny").click(); break;
      case "n": if (i >= 0) { e.preventDefault(); tickets[i].querySelector("input[name=note]").focus(); } break;
      default: return;
    }
  });
}

// --- the decision feed ------------------------------------------------------

function liveFeed() {
  const table = document.querySelector("table.feed[data-live]");
  if (!table || !window.EventSource) return;
  const body = document.getElementById("feed");
  const es = new EventSource(table.dataset.live);
  es.addEventListener("rows", (e) => {
    body.prepend(parseHTML(e.data));
    while (body.rows.length > 500) body.deleteRow(-1);
  });
}

// --- checking an audit entry in the browser --------------------------------

// JSON text read keeping each number as it was written: JSON.parse would
// turn an integer beyond 2^53 (an account number) into its neighbour, and
// the entry hashed would not be the entry logged.
function parseExact(text) {
  const tok = /\s*(?:([{}[\],:])|("(?:[^"\\]|\\.)*")|(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)|(true|false|null))/y;
  const next = () => {
    const m = tok.exec(text);
    if (!m) throw new Error("the entry is not JSON");
    return m;
  };
  const value = (m) => {
    if (m[2] !== undefined) return JSON.parse(m[2]);
    if (m[3] !== undefined) return { number: m[3] };
    if (m[4] !== undefined) return JSON.parse(m[4]);
    if (m[1] === "[") {
      const a = [];
      for (let t = next(); t[1] !== "]"; t = next()) {
        if (a.length) { if (t[1] !== ",") throw new Error("the entry is not JSON"); t = next(); }
        a.push(value(t));
      }
      return a;
    }
    if (m[1] === "{") {
      const o = new Map();
      for (let t = next(); t[1] !== "}"; t = next()) {
        if (o.size) { if (t[1] !== ",") throw new Error("the entry is not JSON"); t = next(); }
        if (t[2] === undefined || next()[1] !== ":") throw new Error("the entry is not JSON");
        o.set(JSON.parse(t[2]), value(next()));
      }
      return o;
    }
    throw new Error("the entry is not JSON");
  };
  const v = value(next());
  if (!/^\s*$/.test(text.slice(tok.lastIndex))) throw new Error("the entry is not JSON");
  return v;
}

// agentgov's canonical JSON: RFC 8785 (keys sorted by UTF-16 code units;
// JavaScript's own number and string serialisation, which the RFC
// prescribes), except that an integer within 64 bits is written with all
// its digits, as the server writes it.
function canonical(v) {
  if (v instanceof Map) return "{" + [...v.keys()].sort().map((k) => JSON.stringify(k) + ":" + canonical(v.get(k))).join(",") + "}";
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  if (v !== null && typeof v === "object") {
    if (/^-?\d+$/.test(v.number)) {
      const n = BigInt(v.number);
      if (n >= -(2n ** 63n) && n < 2n ** 64n) return n.toString();
    }
    return JSON.stringify(Number(v.number));
  }
  return JSON.stringify(v);
}

const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

async function sha256(...parts) {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const buf = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { buf.set(p, o); o += p.length; }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
}

// RFC 9162, 2.1.3.2: the root an inclusion proof leads to.
async function rootFromProof(index, size, leaf, proof) {
  if (index >= size) throw new Error("the index is past the tree");
  let fn = index, sn = size - 1, r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new Error("the proof is longer than the tree allows");
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(Uint8Array.of(1), p, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error("the proof is shorter than the tree needs");
  return r;
}

// A signed note (golang.org/x/mod/sumdb/note) checked with a verifier key
// "name+hash+base64(0x01 || Ed25519 public key)". Returns the note's text.
async function openNote(note, vkey) {
  // The key's base64 may itself hold "+": split at the first two only.
  const [name, hash, ...rest] = vkey.trim().split("+");
  const keyB64 = rest.join("+");
  const key = b64(keyB64 || "");
  if (!name || !/^[0-9a-f]{8}$/.test(hash || "") || key.length !== 33 || key[0] !== 1) throw new Error("the verifier key is not a note verifier key");
  const enc = new TextEncoder();
  const want = (await sha256(enc.encode(name + "\n"), key)).slice(0, 4);
  if (!same(want, Uint8Array.from(hash.match(/../g), (h) => parseInt(h, 16)))) throw new Error("the verifier key's hash does not match its key");
  const split = note.indexOf("\n\n");
  if (split < 0) throw new Error("the checkpoint is not a signed note");
  const text = note.slice(0, split + 1);
  const pub = await crypto.subtle.importKey("raw", key.slice(1), { name: "Ed25519" }, false, ["verify"]);
  for (const line of note.slice(split + 2).split("\n")) {
    const m = line.match(/^\u2014 (\S+) (\S+)$/);
    if (!m || m[1] !== name) continue;
    const sig = b64(m[2]);
    if (sig.length !== 68 || !same(sig.slice(0, 4), want)) continue;
    if (await crypto.subtle.verify({ name: "Ed25519" }, pub, sig.slice(4), enc.encode(text))) return text;
    throw new Error("the checkpoint's signature does not verify with this key");
  }
  throw new Error("the checkpoint has no signature by this key");
}

async function verifyEntry(section) {
  const out = document.getElementById("verify-result");
  const show = (ok, msg) => { out.textContent = msg; out.className = ok ? "good" : "bad"; };
  out.textContent = "Checking…"; out.className = "";
  try {
    const res = await fetch(section.dataset.proof, { credentials: "same-origin" });
    const body = await res.text();
    const p = JSON.parse(body);
    if (!res.ok) throw new Error(p.error || "the server gave no proof");
    const typed = document.getElementById("vkey").value.trim();
    const vkey = typed || p.verifier_key;
    if (!vkey) throw new Error("no verifier key: paste the content of audit.pub");
    const text = await openNote(p.checkpoint, vkey);
    const [, size, rootB64] = text.split("\n");
    if (Number(size) !== p.tree_size) throw new Error("the proof is for another tree size than the checkpoint signs");
    // The entry hashed is the one this page shows, and the proof must be
    // for its place in the log: a true proof of another entry proves
    // nothing about this one.
    const shown = parseExact(section.dataset.entry);
    if (p.index !== Number(section.dataset.index) || Number(shown.get("index").number) !== p.index || !p.entry || p.entry.index !== p.index) throw new Error(`the proof is for entry ${p.index}, not for entry ${section.dataset.index} shown here`);
    if (canonical(parseExact(body).get("entry")) !== canonical(shown)) throw new Error("the entry the proof is for is not the entry shown here");
    const leaf = await sha256(Uint8Array.of(0), new TextEncoder().encode(canonical(shown)));
    const root = await rootFromProof(p.index, p.tree_size, leaf, (p.proof || []).map(b64));
    if (!same(root, b64(rootB64))) throw new Error("the proof does not lead to the signed root");
    show(true, `Verified: entry ${p.index} is in the log of ${p.tree_size} entries signed by ${vkey.split("+")[0]}` + (typed ? " with the key you gave." : " with the key this server reports."));
  } catch (e) {
    show(false, "Not verified: " + e.message);
  }
}

function verifier() {
  const section = document.getElementById("verify");
  if (!section) return;
  const key = document.getElementById("vkey");
  key.value = localStorage.getItem("agentgov.vkey") || "";
  key.addEventListener("change", () => localStorage.setItem("agentgov.vkey", key.value.trim()));
  document.getElementById("verify-button").addEventListener("click", () => verifyEntry(section));
}

document.addEventListener("DOMContentLoaded", () => {
  liveQueue();
  queueKeys();
  liveFeed();
  verifier();
});
