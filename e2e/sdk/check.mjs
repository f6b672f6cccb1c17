// `octo-e2e api-sdk`: the official opencode SDK as a browser-less client of one session,
// through octod's proxy with a user's cookie (octod injects the session's token). Creates an
// opencode session, subscribes to the event stream (SSE), sends a prompt (the stub model answers
// with a bash tool call that writes a file, then with a reply) and waits for the streamed
// events and the reply. Prints one JSON line with what it saw; exits non-zero on any failure.
//
// Environment: OCTO_BASE_URL (…/sessions/<id>/opencode), OCTO_COOKIE, OCTO_ORIGIN,
// OCTO_EXPECT_REPLY (the stub model's final answer), OCTO_TIMEOUT_MS.

import { createOpencodeClient } from "@opencode-ai/sdk";

const env = (name) => {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
};

function fail(message) {
  console.error(`check.mjs: ${message}`);
  process.exit(1);
}

const baseUrl = env("OCTO_BASE_URL");
const reply = env("OCTO_EXPECT_REPLY");
const timeoutMs = Number(process.env.OCTO_TIMEOUT_MS || 120000);
const started = Date.now();
setTimeout(() => fail(`not done within ${timeoutMs} ms; seen: ${JSON.stringify(summary())}`), timeoutMs);

const client = createOpencodeClient({
  baseUrl,
  headers: { Cookie: env("OCTO_COOKIE"), Origin: env("OCTO_ORIGIN") },
});

const seen = {
  types: new Set(),
  count: 0,
  toolCompleted: false,
  toolOutput: null,
  replyStreamed: false,
  idle: false,
};
function summary() {
  return {
    events: seen.count,
    types: [...seen.types].sort(),
    toolCompleted: seen.toolCompleted,
    replyStreamed: seen.replyStreamed,
    idle: seen.idle,
  };
}

// 1. An opencode session.
const created = await client.session.create({ body: { title: "octo e2e sdk" } });
if (created.error || !created.data?.id) {
  fail(`session.create: ${created.response?.status} ${JSON.stringify(created.error)}`);
}
const id = created.data.id;

// 2. The event stream, connected before the prompt is sent.
const controller = new AbortController();
const events = await client.event.subscribe({
  signal: controller.signal,
  sseMaxRetryAttempts: 3,
  onSseError: (error) => console.error(`check.mjs: SSE error: ${error}`),
});
let connected;
const isConnected = new Promise((resolve) => (connected = resolve));
let finished;
const isFinished = new Promise((resolve) => (finished = resolve));
const reading = (async () => {
  for await (const event of events.stream) {
    seen.count += 1;
    seen.types.add(event.type);
    const props = event.properties ?? {};
    if (event.type === "server.connected") connected();
    if (event.type === "message.part.updated" && props.part?.sessionID === id) {
      const part = props.part;
      if (part.type === "tool" && part.tool === "bash" && part.state?.status === "completed") {
        seen.toolCompleted = true;
        seen.toolOutput = part.state.output ?? "";
      }
      if (part.type === "text" && (part.text ?? "").includes(reply)) seen.replyStreamed = true;
    }
    const idle =
      (event.type === "session.idle" && props.sessionID === id) ||
      (event.type === "session.status" && props.sessionID === id && props.status?.type === "idle");
    if (idle) seen.idle = true;
    if (seen.toolCompleted && seen.replyStreamed && seen.idle) finished();
  }
})().catch((error) => {
  if (!controller.signal.aborted) fail(`the event stream broke: ${error}`);
});
await Promise.race([
  isConnected,
  new Promise((_, reject) => setTimeout(() => reject(new Error("no server.connected")), 30000)),
]).catch((error) => fail(`${error.message} on the event stream`));

// 3. The prompt; opencode answers when the agent loop is done.
const answer = await client.session.prompt({
  path: { id },
  body: { parts: [{ type: "text", text: "Please create the file." }] },
});
if (answer.error || !answer.data) {
  fail(`session.prompt: ${answer.response?.status} ${JSON.stringify(answer.error)}`);
}
const text = (answer.data.parts ?? [])
  .filter((p) => p.type === "text")
  .map((p) => p.text)
  .join("");
if (!text.includes(reply)) fail(`the reply lacks ${JSON.stringify(reply)}: ${JSON.stringify(answer.data)}`);

// 4. The streamed events of that loop.
await isFinished;
controller.abort();
await reading;

const messages = await client.session.messages({ path: { id } });
if (messages.error) fail(`session.messages: ${JSON.stringify(messages.error)}`);
console.log(
  JSON.stringify({
    session: id,
    reply: text,
    messages: messages.data.length,
    ms: Date.now() - started,
    ...summary(),
  }),
);
process.exit(0);
