// `cargo xtask bench ui`: the UI's heavy cases in Chromium (playwright-core, Debian's chromium,
// headless), timed by the page itself (performance.now) and Chromium's long-task observer, and the
// requests an idle open workspace makes (counted by playwright, per minute). Each
// scenario runs against this code and against the anchor (the UI of an older commit) in the same
// run, alternating, and prints medians and the ratio. Numbers for people; nothing is asserted.
//
//   node e2e/bench-ui.mjs --dist DIR [--anchor-dist DIR --anchor-label TEXT] [--runs N] [--idle-seconds S]
//   node e2e/bench-ui.mjs --base-url URL --user U --password P --session ID --folder /PATH [--idle-seconds S]
//
// With --dist the UI is served by bench-harness.mjs (a fake API: a 10,000-entry folder, a
// 500-message conversation). With --base-url it is measured against a real stack instead (Caddy
// in front of octod): the folder scenario in the given session's folder (one that exists), and
// the idle workspace.
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { BIG, CHAT_SESSION, FILES_SESSION, startHarness, streamedReply } from "./bench-harness.mjs";

const { values: args } = parseArgs({
  options: {
    dist: { type: "string" },
    "anchor-dist": { type: "string" },
    "anchor-label": { type: "string", default: "anchor" },
    runs: { type: "string", default: "5" },
    "base-url": { type: "string" },
    user: { type: "string" },
    password: { type: "string" },
    session: { type: "string" },
    folder: { type: "string" },
    "idle-seconds": { type: "string", default: "20" },
  },
});
const runs = Number(args.runs);
const idleSeconds = Number(args["idle-seconds"]);

// Collects every long task (> 50 ms on the main thread) from the page's start. Also sets the
// UI's signed-in hint (theme.ts), so that it asks /api/me instead of showing the sign-in page.
const OBSERVE_LONG_TASKS = () => {
  localStorage.setItem("octo.signedIn", "1");
  window.__longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: "longtask", buffered: true });
};

/** In the page: the longest task that ran (partly) after `since`, in ms (0: none over 50 ms). */
const longestSince = (page, since) =>
  page.evaluate((t) => Math.max(0, ...window.__longTasks.filter((e) => e.start + e.duration > t).map((e) => e.duration)), since);

/** In the page: waits until `selector` matches, polling each frame; the `performance.now()` then. */
const WAIT_FOR = (selector) =>
  new Promise((resolve) => {
    const poll = () => (document.querySelector(selector) ? resolve(performance.now()) : requestAnimationFrame(poll));
    poll();
  });

/** In the page: scrolls `el` to its end in direction `dir` (±1) in steps of a hundredth of its
 * height (at least a viewport) per frame. */
const SWEEP = async (el, dir) => {
  const step = Math.max(el.clientHeight, el.scrollHeight / 100);
  for (let guard = 0; guard < 1000; guard++) {
    const before = el.scrollTop;
    el.scrollTop += dir * step;
    await new Promise((r) => requestAnimationFrame(r));
    if (el.scrollTop === before) return;
  }
};

const settle = (page, ms = 800) => page.waitForTimeout(ms);
const rowSelector = (path) => `[data-testid="file-entry"][data-path="${path}"]`;

/** Opens `folder` (holding `count` entries, the last named `last`) in the Files pane. */
async function folderScenario(page, { folder, first, last }) {
  await page.locator(rowSelector(folder)).waitFor({ timeout: 60_000 });
  await settle(page);
  const opened = await page.evaluate(
    async ({ folder, first, waitFor }) => {
      const wait = new Function(`return (${waitFor})`)();
      const t0 = performance.now();
      document.querySelector(`[data-testid="file-entry"][data-path="${folder}"]`).click();
      const t1 = await wait(`[data-testid="file-entry"][data-path="${first}"]`);
      return { t0, firstRows: t1 - t0 };
    },
    { folder, first, waitFor: WAIT_FOR.toString() },
  );
  await settle(page);
  const openLongest = await longestSince(page, opened.t0);
  const domRowsOpen = await page.locator('[data-testid="file-entry"]').count();
  // Jump to the end (the scrollbar dragged down), then back to the top in 100 frames (a fling).
  const scrolled = await page.evaluate(
    async ({ last, waitFor, sweep }) => {
      const wait = new Function(`return (${waitFor})`)();
      const tree = document.querySelector('[data-testid="files-tree"]');
      const t0 = performance.now();
      tree.scrollTop = tree.scrollHeight;
      await wait(`[data-testid="file-entry"][data-path="${last}"]`);
      const ms = performance.now() - t0;
      await new Function(`return (${sweep})`)()(tree, -1);
      return { t0, ms };
    },
    { last, waitFor: WAIT_FOR.toString(), sweep: SWEEP.toString() },
  );
  await settle(page);
  return {
    "folder: time to first rows (ms)": opened.firstRows,
    "folder: longest task opening (ms)": openLongest,
    "folder: rows in the DOM": Math.max(domRowsOpen, await page.locator('[data-testid="file-entry"]').count()),
    "folder: scroll to the last entry (ms)": scrolled.ms,
    "folder: longest task jumping to the end and back (ms)": await longestSince(page, scrolled.t0),
  };
}

/** An open workspace left alone: the requests it makes over `idleSeconds` (after the first
 * listings and connections settle), per minute — those of the file tree (the file server's API:
 * listings, the change stream's reconnects) and all of them (every pane, the API). */
async function idleScenario(page) {
  await page.locator('[data-testid="file-entry"]').first().waitFor({ timeout: 60_000 });
  await settle(page, 3000);
  const counts = { files: 0, all: 0 };
  const count = (request) => {
    counts.all += 1;
    if (new URL(request.url()).pathname.includes("/files/api/")) counts.files += 1;
  };
  page.on("request", count);
  await page.waitForTimeout(idleSeconds * 1000);
  page.off("request", count);
  const perMinute = (n) => (n * 60) / idleSeconds;
  return {
    "idle workspace: file tree requests per minute": perMinute(counts.files),
    "idle workspace: all requests per minute": perMinute(counts.all),
  };
}

/** Replies streamed in the chat scenario: this many text deltas, one every STREAM_MS. */
const STREAM_DELTAS = 300;
const STREAM_MS = 10;

/** The 500-message conversation: shown (its newest page), scrolled to the top (loading the earlier
 * pages on the way) and back, a reply streamed in at the end, then typed into. */
async function chatScenario(page, harness) {
  const messages = page.locator('[data-testid="chat-message"]');
  const count = () => page.evaluate(() => document.querySelectorAll('[data-testid="chat-message"]').length);
  const t0 = await page.evaluate(() => performance.now());
  await messages.first().waitFor({ timeout: 120_000 });
  const shown = (await page.evaluate(() => performance.now())) - t0;
  await settle(page, 1500);
  const loadLongest = await longestSince(page, 0);
  // From the conversation's answer on: its parse and render, not the page's own start.
  const answered = await page.evaluate(
    () => performance.getEntriesByType("resource").find((e) => /\/session\/[^/]+\/message(\?|$)/.test(e.name))?.responseStart ?? 0,
  );
  const conversationLongest = await longestSince(page, answered);
  let inDom = await count();
  // To the conversation's first message (the chat loads earlier pages on the way up), and back.
  const scroll = await page.evaluate(
    async ({ sweep, first }) => {
      const list = document.querySelector('[data-testid="chat-messages"]');
      const step = new Function(`return (${sweep})`)();
      const t = performance.now();
      const top = () => list.scrollTop === 0 && list.querySelector(`[data-message-id="${first}"]`);
      for (let guard = 0; guard < 10_000 && !top(); guard++) {
        await step(list, -1);
        await new Promise((r) => requestAnimationFrame(r));
      }
      const atTop = document.querySelectorAll('[data-testid="chat-message"]').length;
      await step(list, 1);
      return { t, total: performance.now() - t, atTop };
    },
    { sweep: SWEEP.toString(), first: harness.firstMessage },
  );
  await settle(page);
  const scrollLongest = await longestSince(page, scroll.t);
  inDom = Math.max(inDom, scroll.atTop, await count());
  // A reply streams in at the end, the list at its bottom: it follows the reply.
  const reply = await streamedReply(STREAM_DELTAS);
  const streamStart = await page.evaluate(() => performance.now());
  for (const event of reply.events) {
    harness.emit(event);
    await new Promise((r) => setTimeout(r, STREAM_MS));
  }
  const lastWord = `word${STREAM_DELTAS - 1}`;
  await page.locator(`[data-message-id="${reply.messageID}"]`).getByText(lastWord).waitFor({ timeout: 60_000 });
  await settle(page, 300);
  const streamLongest = await longestSince(page, streamStart);
  const followed = await page.evaluate((id) => {
    const list = document.querySelector('[data-testid="chat-messages"]');
    const reply = document.querySelector(`[data-message-id="${id}"]`);
    return reply && reply.getBoundingClientRect().bottom <= list.getBoundingClientRect().bottom + 60 ? 1 : 0;
  }, reply.messageID);
  const typed = await page.evaluate(() => performance.now());
  await page.getByTestId("chat-input").pressSequentially("the chat stays responsive", { delay: 10 });
  await settle(page, 300);
  return {
    "chat: first messages shown (ms)": shown,
    "chat: longest task loading the page and conversation (ms)": loadLongest,
    "chat: longest task from the conversation's answer on (ms)": conversationLongest,
    "chat: messages in the DOM (most seen)": Math.max(inDom, await count()),
    "chat: scroll to the top and back (ms)": scroll.total,
    "chat: longest task scrolling (ms)": scrollLongest,
    [`chat: longest task while a reply streams (${STREAM_DELTAS} deltas) (ms)`]: streamLongest,
    "chat: streamed reply's end in view (1 = yes)": followed,
    "chat: longest task typing (ms)": await longestSince(page, typed),
  };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--ignore-certificate-errors"],
});

/** One scenario in a fresh context (no cache, no localStorage) at `url`. */
async function measure(url, scenario, prepare, target) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, ignoreHTTPSErrors: true });
  try {
    await context.addInitScript(OBSERVE_LONG_TASKS);
    if (prepare) await prepare(context);
    const page = await context.newPage();
    await page.goto(url);
    return await scenario(page, target?.harness);
  } finally {
    await context.close();
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Runs each target's scenarios `runs` times, alternating targets; prints medians and ratios. */
async function compare(targets, scenarios) {
  const results = targets.map(() => ({}));
  for (let run = 1; run <= runs; run++) {
    for (const [t, target] of targets.entries()) {
      for (const s of scenarios) {
        let numbers;
        try {
          numbers = await measure(s.url(target), s.run, s.prepare, target);
        } catch (error) {
          console.log(`  ${target.label}: ${s.name} failed in run ${run}: ${String(error).split("\n")[0]}`);
          continue;
        }
        for (const [k, v] of Object.entries(numbers)) (results[t][k] ??= []).push(v);
      }
    }
    console.log(`  run ${run}/${runs} done`);
  }
  const keys = [...new Set(results.flatMap((r) => Object.keys(r)))];
  const width = Math.max(...keys.map((k) => k.length));
  const fmt = (v) => (v === undefined ? "—" : v >= 100 ? v.toFixed(0) : v.toFixed(1));
  console.log(`\n${"".padEnd(width)}  ${targets.map((t) => t.label.padStart(14)).join("  ")}${targets.length > 1 ? "   ratio (this/anchor)" : ""}`);
  for (const k of keys) {
    const meds = results.map((r) => (r[k]?.length ? median(r[k]) : undefined));
    let ratio = "";
    if (meds.length > 1 && meds[0] !== undefined && meds[1]) ratio = `   ${(meds[0] / meds[1]).toFixed(3)}`;
    else if (meds.length > 1 && meds[0] !== undefined && meds[1] === 0) ratio = "   (anchor had none)";
    console.log(`${k.padEnd(width)}  ${meds.map((m) => fmt(m).padStart(14)).join("  ")}${ratio}`);
  }
  console.log(`\nmedians of ${runs} runs; a longest task of 0 means none over 50 ms (the observer's floor)`);
}

const harnesses = [];
try {
  if (args["base-url"]) {
    const base = args["base-url"].replace(/\/$/, "");
    for (const need of ["user", "password", "session", "folder"]) if (!args[need]) throw new Error(`--base-url needs --${need}`);
    const folder = args.folder.replace(/\/$/, "");
    const login = async (context) => {
      const r = await context.request.post(`${base}/api/auth/login`, {
        data: { username: args.user, password: args.password },
        headers: { Origin: base },
      });
      if (!r.ok()) throw new Error(`signing in: HTTP ${r.status()}`);
    };
    // The folder's first and last entries: the file server lists them in the tree's order.
    const probe = await browser.newContext({ ignoreHTTPSErrors: true });
    await login(probe);
    const listing = await (await probe.request.get(`${base}/sessions/${args.session}/files/api/list?path=${encodeURIComponent(folder.slice(1))}`)).json();
    await probe.close();
    const names = listing.entries.map((e) => e.name);
    console.log(`bench ui against ${base}: ${folder} holds ${names.length} entries`);
    await compare(
      [{ label: "this", base }],
      [
        {
          name: "folder",
          url: (t) => `${t.base}/w/${args.session}`,
          prepare: login,
          run: (page) => folderScenario(page, { folder, first: `${folder}/${names[0]}`, last: `${folder}/${names.at(-1)}` }),
        },
        { name: "idle", url: (t) => `${t.base}/w/${args.session}`, prepare: login, run: idleScenario },
      ],
    );
  } else {
    if (!args.dist) throw new Error("give --dist DIR (a built UI) or --base-url URL");
    const targets = [{ label: "this", dist: args.dist }];
    if (args["anchor-dist"]) targets.push({ label: args["anchor-label"], dist: args["anchor-dist"] });
    for (const t of targets) {
      const h = await startHarness({ dist: t.dist });
      harnesses.push(h);
      t.base = h.url;
      t.harness = h;
    }
    console.log(`bench ui: ${targets.map((t) => `${t.label} = ${t.dist}`).join(", ")}; ${runs} runs each`);
    await compare(targets, [
      {
        name: "folder",
        url: (t) => `${t.base}/w/${FILES_SESSION}`,
        run: (page) => folderScenario(page, { folder: `/${BIG}`, first: `/${BIG}/file-00000.txt`, last: `/${BIG}/file-09999.txt` }),
      },
      { name: "chat", url: (t) => `${t.base}/w/${CHAT_SESSION}`, run: chatScenario },
      { name: "idle", url: (t) => `${t.base}/w/${FILES_SESSION}`, run: idleScenario },
    ]);
  }
} finally {
  await browser.close();
  for (const h of harnesses) await h.close();
}
