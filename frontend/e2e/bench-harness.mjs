// The UI benchmark's harness: serves a built UI (dist/) with a tiny fake API behind it, so that
// `bench-ui.mjs` measures the browser's work alone, without the whole stack. Two running
// sessions: `files`, whose home holds `big/` (FILES entries) and no conversation, and `chat`,
// with one conversation of MESSAGES messages (the captured bash reply of chat/fixtures repeated:
// every tenth command output 10,000 lines, the others 40; every fifth reply with a 2,000-line
// diff). Apart, so that
// loading one scenario's data does not weigh on the other's measurement. `emit(event)` sends an
// opencode event to the pages' event streams (a reply streaming in: `streamedReply`).
//
//   node e2e/bench-harness.mjs --dist DIR [--port P] [--files N] [--messages N]
//
// Listings page as the file server's do (`offset`, `limit`, `total`) and the conversation as
// opencode's does (`limit`, `before`, `X-Next-Cursor`): `messagePage`. The file server's change
// stream (`/files/api/watch`) says it watches everything and sends what `change(dir, name)` adds. Everything not faked answers 404 (the terminal's WebSocket too: the
// bench does not use it).
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, extname, resolve, dirname } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const FILES_SESSION = "files";
export const CHAT_SESSION = "chat";
export const BIG = "big";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".json": "application/json",
  ".png": "image/png",
  ".woff2": "font/woff2",
};

/** The folder listings: the root with `big/` and a few files, and `big/` with `files` files. */
function listings(files) {
  const now = 1_700_000_000_000;
  const file = (dir, name, size) => ({ name, path: dir ? `${dir}/${name}` : name, kind: "file", size, mtime: now });
  const root = {
    path: "",
    entries: [
      { name: BIG, path: BIG, kind: "dir", size: 0, mtime: now },
      { name: "src", path: "src", kind: "dir", size: 0, mtime: now },
      file("", "AGENTS.md", 812),
      file("", "README.md", 2048),
    ],
    truncated: false,
  };
  const big = {
    path: BIG,
    entries: Array.from({ length: files }, (_, i) => file(BIG, `file-${String(i).padStart(5, "0")}.txt`, 100 + i)),
    truncated: false,
  };
  return new Map([
    ["", JSON.stringify(root)],
    [BIG, JSON.stringify(big)],
    ["src", JSON.stringify({ path: "src", entries: [file("src", "main.rs", 64)], truncated: false })],
  ]);
}

/** `count` messages: the captured bash reply's user prompt and replies repeated (see above). */
export async function conversation(count) {
  const fixture = JSON.parse(await readFile(join(here, "../src/chat/fixtures/bash-reply.json"), "utf8"));
  const sessionID = fixture.messages[0].info.sessionID;
  const lines = (n) => Array.from({ length: n }, (_, i) => `line ${i}: ${"x".repeat(40)}`).join("\n");
  const longOutput = lines(10_000);
  const shortOutput = lines(40);
  const diff = ["```diff", ...Array.from({ length: 2000 }, (_, i) => `${i % 2 ? "+" : "-"} value_${i} = ${i};`), "```"].join("\n");
  const messages = [];
  for (let i = 0; messages.length < count; i++) {
    for (const template of fixture.messages) {
      if (messages.length >= count) break;
      const m = structuredClone(template);
      const id = `${m.info.id}${String(i).padStart(4, "0")}`;
      m.info.id = id;
      m.info.time.created += i * 1000;
      for (const p of m.parts) {
        p.id = `${p.id}${String(i).padStart(4, "0")}`;
        p.messageID = id;
        if (p.type === "tool" && p.state?.output !== undefined) {
          const output = i % 10 === 0 ? longOutput : shortOutput;
          p.state.output = output;
          if (p.state.metadata) p.state.metadata.output = output;
        }
        if (p.type === "text" && m.info.role === "assistant" && i % 5 === 0) p.text = `${p.text}\n\n${diff}`;
      }
      messages.push(m);
    }
  }
  const session = fixture.events.find((e) => e.type === "session.created").properties.info;
  messages.sort((a, b) => (a.info.id < b.info.id ? -1 : a.info.id > b.info.id ? 1 : 0));
  const last = messages.at(-1).info.id;
  const texts = messages.map((m) => JSON.stringify(m));
  return {
    session: { ...session, id: sessionID, time: { created: 1, updated: 2 } },
    messages: `[${texts.join(",")}]`,
    first: messages[0].info.id,
    last,
    page: (params) => messagePage(texts, params),
  };
}

/**
 * `GET /session/:id/message` as opencode 1.18 answers it (checked against the pinned version):
 * without `limit`, every message; with `limit=n`, the newest n, oldest first, and while older ones
 * remain their cursor in `X-Next-Cursor` (and a `Link`), which `before` (with `limit`) takes back.
 * The cursor here is the index of the page's first message; opencode's is opaque too.
 */
export function messagePage(texts, params) {
  const limit = Number(params.get("limit") ?? 0);
  const before = params.get("before");
  if (before !== null && !limit) return { status: 400, body: "{}", headers: {} };
  const end = before === null ? texts.length : Number(Buffer.from(before, "base64url").toString());
  if (!Number.isInteger(end) || end < 0 || end > texts.length) return { status: 400, body: "{}", headers: {} };
  const start = limit ? Math.max(0, end - limit) : 0;
  const headers = {};
  if (start > 0) {
    const cursor = Buffer.from(String(start)).toString("base64url");
    headers["x-next-cursor"] = cursor;
    headers["access-control-expose-headers"] = "Link, X-Next-Cursor";
  }
  return { status: 200, body: `[${texts.slice(start, end).join(",")}]`, headers };
}

/** The events of an assistant reply streamed after the conversation's last message: its message,
 * an empty text part, then `deltas` pieces of text (Markdown with a code block) one by one. */
export async function streamedReply(deltas) {
  const fixture = JSON.parse(await readFile(join(here, "../src/chat/fixtures/bash-reply.json"), "utf8"));
  const reply = structuredClone(fixture.messages.at(-1).info);
  const sessionID = reply.sessionID;
  const messageID = `${reply.id}zzzz`; // after every message of conversation()
  const partID = "prt_zzzz_streamed";
  const info = { ...reply, id: messageID, time: { created: Date.now() } };
  delete info.finish;
  const pieces = Array.from({ length: deltas }, (_, i) =>
    i === 0 ? "Streaming a reply: " : i % 40 === 1 ? "\n\n```sh\n" : i % 40 === 21 ? "\n```\n\n" : `word${i} `,
  );
  return {
    messageID,
    events: [
      { type: "session.status", properties: { sessionID, status: { type: "busy" } } },
      { type: "message.updated", properties: { sessionID, info } },
      { type: "message.part.updated", properties: { sessionID, part: { id: partID, sessionID, messageID, type: "text", text: "" } } },
      ...pieces.map((delta) => ({ type: "message.part.delta", properties: { sessionID, messageID, partID, field: "text", delta } })),
      { type: "session.status", properties: { sessionID, status: { type: "idle" } } },
    ],
  };
}

/** Starts the harness; resolves to `{ url, close() }`. */
export async function startHarness({ dist, port = 0, files = 10_000, messages = 500 }) {
  const root = resolve(dist);
  const lists = listings(files);
  const parsed = new Map();
  const chat = await conversation(messages);
  const now = Date.now();
  const session = (id) => ({
    id,
    owner: "bench",
    template: "coding-copilot",
    state: "running",
    desired: "running",
    created_at: now,
    updated_at: now,
    urls: { files: `/sessions/${id}/files`, opencode: `/sessions/${id}/opencode`, terminal: `/sessions/${id}/terminal` },
  });
  const ids = [FILES_SESSION, CHAT_SESSION];
  const events = new Set();
  const watchers = new Set();

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    const p = url.pathname;
    const json = (body, status = 200) => {
      const text = typeof body === "string" ? body : JSON.stringify(body);
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(text);
    };
    const notFound = () => json({ error: { code: "not_found", message: `no ${p} in the bench harness` } }, 404);
    if (p === "/api/me") return json({ name: "bench", role: "admin", created_at: now, disabled: false });
    if (p === "/api/templates") return json([{ id: "coding-copilot", name: "Coding Copilot", description: "" }]);
    if (p === "/api/sessions") return json(ids.map(session));
    const sessionMatch = /^\/api\/sessions\/([^/]+)$/.exec(p);
    if (sessionMatch && ids.includes(sessionMatch[1])) return json(session(sessionMatch[1]));
    const [, id, service] = /^\/sessions\/([^/]+)\/([^/]+)/.exec(p) ?? [];
    if (p.startsWith("/sessions/") && !ids.includes(id)) return notFound();
    if (service === "files" && p === `/sessions/${id}/files/api/watch`) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write(`event: status\ndata: ${JSON.stringify({ complete: true, watched: 3, max: 10000, unwatched: [] })}\n\n`);
      if (id === FILES_SESSION) watchers.add(res);
      req.on("close", () => watchers.delete(res));
      return;
    }
    if (service === "files" && p === `/sessions/${id}/files/api/list`) {
      const path = (url.searchParams.get("path") ?? "").replace(/^\/+|\/+$/g, "");
      const listing = id === FILES_SESSION || path !== BIG ? lists.get(path) : undefined;
      if (!listing) return json({ error: { code: "not_found", message: "No such file or directory" } }, 404);
      // Paged as the file server pages (`offset`, `limit`: a part of the sorted entries, with
      // the total); the listings here are in its order already.
      if (!url.searchParams.has("limit")) return json(listing);
      if (parsed.get(path)?.text !== listing) parsed.set(path, { text: listing, whole: JSON.parse(listing) });
      const { whole } = parsed.get(path);
      const offset = Math.min(Number(url.searchParams.get("offset") ?? 0), whole.entries.length);
      const entries = whole.entries.slice(offset, offset + Number(url.searchParams.get("limit")));
      return json({ ...whole, entries, total: whole.entries.length, offset });
    }
    const oc = `/sessions/${id}/opencode`;
    const withChat = id === CHAT_SESSION;
    if (p.startsWith(`${oc}/`)) {
      const route = p.slice(oc.length);
      if (route === "/event" || route === "/global/event") {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
        res.write(`data: ${JSON.stringify({ type: "server.connected", properties: {} })}\n\n`);
        events.add(res);
        req.on("close", () => events.delete(res));
        return;
      }
      if (route === "/session") return json(withChat ? [chat.session] : []);
      if (route === "/session/status") return json({});
      if (route === "/permission" || route === "/question") return json([]);
      if (withChat && route === `/session/${chat.session.id}/message`) {
        const page = chat.page(url.searchParams);
        res.writeHead(page.status, { "content-type": "application/json", "cache-control": "no-store", ...page.headers });
        return res.end(page.body);
      }
      return notFound();
    }
    if (p.startsWith("/api/") || p.startsWith("/sessions/")) return notFound();
    // The UI: a file of dist/, else index.html (the router's routes).
    const file = join(root, p);
    const inside = file.startsWith(root + "/");
    try {
      const body = await readFile(inside ? file : join(root, "index.html"));
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      const body = await readFile(join(root, "index.html"));
      res.writeHead(200, { "content-type": TYPES[".html"] });
      res.end(body);
    }
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** The conversation's first message (by id, as the chat orders them). */
    firstMessage: chat.first,
    emit(event) {
      for (const res of events) res.write(`data: ${JSON.stringify(event)}\n\n`);
    },
    /** Adds a file `name` to folder `dir` ("" or BIG) of the files session and announces it on
     * the change stream, as the file server would. */
    change(dir, name) {
      const listing = JSON.parse(lists.get(dir));
      listing.entries.push({ name, path: dir ? `${dir}/${name}` : name, kind: "file", size: 1, mtime: now });
      // In the file server's order (folders first, then names naturally; enough for these names).
      const order = new Intl.Collator("en", { numeric: true, sensitivity: "base" });
      listing.entries.sort((a, b) => (b.kind === "dir") - (a.kind === "dir") || order.compare(a.name, b.name));
      lists.set(dir, JSON.stringify(listing));
      const event = `event: change\ndata: ${JSON.stringify({ dirs: [{ path: dir, names: [name] }] })}\n\n`;
      for (const res of watchers) res.write(event);
    },
    close: () =>
      new Promise((ok) => {
        for (const res of [...events, ...watchers]) res.destroy();
        server.close(ok);
        server.closeAllConnections();
      }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { dist: { type: "string", default: "dist" }, port: { type: "string", default: "5180" }, files: { type: "string" }, messages: { type: "string" } },
  });
  const h = await startHarness({
    dist: values.dist,
    port: Number(values.port),
    files: values.files ? Number(values.files) : undefined,
    messages: values.messages ? Number(values.messages) : undefined,
  });
  console.log(`bench harness: ${h.url}/w/${FILES_SESSION} and ${h.url}/w/${CHAT_SESSION}`);
}
