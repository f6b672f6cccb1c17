// The chat pane against a real stack (octod, a session's opencode, the stub model of
// `octo-e2e stub-llm` behind octod's [llm]): a prompt gives a streamed Markdown reply and a bash
// tool call that writes a file (read back through the file server); a write shows as a diff;
// permission requests (the research template asks before any shell command) are approved and
// denied from the UI; the agent's questions are answered and dismissed; the event stream
// reconnects and catches up; a running reply is stopped; conversations are created, switched and
// remembered across a reload, and deleted. No console errors.
import { expectNoConsoleErrors } from "./util.mjs";

const AGENT_FILE_TEXT = "written by the agent through its shell tool";

async function createSession(context, baseUrl, template) {
  const response = await context.request.post(`${baseUrl}/api/sessions`, {
    data: { template },
    headers: { Origin: baseUrl },
  });
  if (!response.ok()) throw new Error(`creating a ${template} session: HTTP ${response.status()} ${await response.text()}`);
  const { id } = await response.json();
  const deadline = Date.now() + 180_000;
  for (;;) {
    const state = await context.request.get(`${baseUrl}/api/sessions/${id}`);
    const session = await state.json();
    if (session.state === "running") return id;
    if (session.state === "failed") throw new Error(`session ${id} failed: ${session.reason}`);
    if (Date.now() > deadline) throw new Error(`session ${id} not running within 180 s: ${session.state}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function openChat(page, baseUrl, id) {
  await page.goto(`${baseUrl}/w/${id}`);
  await page.locator('[data-testid=chat-connection][data-state=open]').waitFor({ timeout: 30_000 });
}

async function send(page, text) {
  await page.getByTestId("chat-input").fill(text);
  await page.getByTestId("chat-send").click();
}

/** Records every distinct text the assistant's Markdown shows, as the DOM changes. */
async function recordReplies(page) {
  await page.evaluate(() => {
    const seen = (window.__octoReplyTexts = []);
    const root = document.querySelector("[data-testid=chat-messages]");
    new MutationObserver(() => {
      const all = [...root.querySelectorAll("[data-role=assistant] .md")].map((el) => el.textContent);
      const last = all.at(-1) ?? "";
      if (last && seen.at(-1) !== last) seen.push(last);
    }).observe(root, { subtree: true, childList: true, characterData: true });
  });
}

export default async function chat({ newContext, baseUrl, newUser, step, outDir }) {
  const user = await newUser();
  const context = await newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const consoleErrors = expectNoConsoleErrors(page);
  const sessions = [];
  try {
    await page.goto(`${baseUrl}/`);
    await page.getByTestId("login-username").fill(user.username);
    await page.getByTestId("login-password").fill(user.password);
    await page.getByTestId("login-submit").click();
    await page.getByTestId("account-menu").waitFor();
    step("two sessions: coding-copilot and research-assistant (asks before shell commands)");
    const [coding, research] = await Promise.all([
      createSession(context, baseUrl, "coding-copilot"),
      createSession(context, baseUrl, "research-assistant"),
    ]);
    sessions.push(coding, research);

    step("a prompt streams a Markdown reply after a bash tool call that writes the file");
    await openChat(page, baseUrl, coding);
    await page.getByText("Ask the agent to do something").waitFor();
    await recordReplies(page);
    await send(page, "Please create the file.");
    await page.locator("[data-testid=chat-message][data-role=user]", { hasText: "Please create the file." }).waitFor();
    const bash = page.locator("[data-testid=chat-tool][data-tool=bash]");
    await bash.and(page.locator("[data-status=completed]")).waitFor({ timeout: 60_000 });
    const reply = page.locator("[data-testid=chat-message][data-role=assistant] .md").last();
    await reply.locator("pre code.hljs", { hasText: "cat ~/agent-loop.txt" }).waitFor({ timeout: 60_000 });
    if ((await reply.locator("pre code span[class^=hljs-]").count()) === 0) throw new Error("the code block is not highlighted");
    if ((await reply.locator("strong").textContent()) !== "one line") throw new Error("the reply's Markdown is not rendered");
    await page.locator("[data-testid=chat-abort]").waitFor({ state: "detached" });
    const texts = await page.evaluate(() => window.__octoReplyTexts);
    // While streaming, the reply showed without its end (the code block comes last).
    const final = texts.at(-1);
    const partial = texts.filter((text) => text.startsWith("The file") && !text.includes("cat ~/agent-loop.txt"));
    if (!final.startsWith("The file is written.") || partial.length < 1) {
      throw new Error(`the reply did not stream (texts seen: ${JSON.stringify(texts)})`);
    }
    step(`  streamed: ${partial.length} partial texts before the final one`);
    const file = await context.request.get(`${baseUrl}/sessions/${coding}/files/api/download?path=agent-loop.txt`);
    if (!file.ok() || (await file.text()).trim() !== AGENT_FILE_TEXT) {
      throw new Error(`the file the agent wrote: HTTP ${file.status()} ${await file.text()}`);
    }
    step("a code block's copy button copies its code");
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
    const block = reply.locator("pre.md-code");
    await block.hover();
    await block.locator(".md-code-copy").click();
    await block.locator(".md-code-copy", { hasText: "Copied" }).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    if (copied !== "cat ~/agent-loop.txt") throw new Error(`the clipboard holds ${JSON.stringify(copied)}`);

    step("the bash call opens to its command and output");
    await bash.locator("summary").click();
    const terminal = bash.locator(".chat-terminal");
    await terminal.waitFor();
    const shown = await terminal.textContent();
    if (!shown.includes(`$ echo '${AGENT_FILE_TEXT}' > /home/dev/agent-loop.txt`) || !shown.includes("(no output)")) {
      throw new Error(`the bash call shows: ${shown}`);
    }

    step("a write tool call shows as a diff");
    await send(page, "Please write a note.");
    const write = page.locator("[data-testid=chat-tool][data-tool=write][data-status=completed]");
    await write.waitFor({ timeout: 60_000 });
    const added = await write.locator(".diff-add").allTextContents();
    if (added.length !== 4 || !added[0].includes("# Notes")) throw new Error(`the write's diff: ${JSON.stringify(added)}`);
    await page.locator("[data-testid=chat-abort]").waitFor({ state: "detached" });
    await page.screenshot({ path: `${outDir}/chat-light.png` });

    step("the agent's question: an option picked and sent; another one dismissed");
    await send(page, "Ask me first, please.");
    await page.getByTestId("question-prompt").waitFor({ timeout: 60_000 });
    await page.getByTestId("question-prompt").getByLabel("notes.txt").check();
    await page.screenshot({ path: `${outDir}/chat-question.png` });
    await page.getByTestId("question-submit").click();
    const answered = page.locator("[data-testid=chat-tool][data-tool=question][data-status=completed]");
    await answered.waitFor({ timeout: 60_000 });
    await page.getByTestId("question-prompt").waitFor({ state: "detached" });
    await answered.locator("summary").click();
    const answer = await answered.locator(".chat-tool-output").textContent();
    if (!answer.includes('="notes.txt"')) throw new Error(`the question's answer: ${answer}`);
    await page.locator("[data-testid=chat-abort]").waitFor({ state: "detached", timeout: 60_000 });
    await send(page, "Ask me again.");
    await page.getByTestId("question-dismiss").waitFor({ timeout: 60_000 });
    await page.getByTestId("question-dismiss").click();
    await page.locator("[data-testid=chat-tool][data-tool=question][data-status=error]").waitFor({ timeout: 60_000 });
    await page.locator("[data-testid=chat-abort]").waitFor({ state: "detached", timeout: 60_000 });

    step("the event stream reconnects after opencode drops it, and catches up on what it missed");
    const conversations = page.getByTestId("chat-conversations");
    const conversationId = await conversations.inputValue();
    const bashCalls = await page.locator("[data-testid=chat-tool][data-tool=bash][data-status=completed]").count();
    // Keep the pane from reconnecting while a turn runs without it (the refused attempts log
    // network errors in the console: those are this check's own and are not counted).
    let refused = 0;
    let firstRefusal;
    const refusing = new Promise((resolve) => (firstRefusal = resolve));
    const errorsBefore = consoleErrors.errors.length;
    await page.route("**/opencode/event**", (route) => {
      refused += 1;
      firstRefusal();
      return route.abort();
    });
    // opencode ends every event stream when its instance is disposed.
    const disposed = await context.request.post(`${baseUrl}/sessions/${coding}/opencode/instance/dispose`, {
      headers: { Origin: baseUrl },
    });
    if (!disposed.ok()) throw new Error(`disposing opencode's instance: HTTP ${disposed.status()}`);
    await refusing;
    await page.locator("[data-testid=chat-connection][data-state=reconnecting]").waitFor({ timeout: 30_000 });
    const prompted = await context.request.post(
      `${baseUrl}/sessions/${coding}/opencode/session/${conversationId}/prompt_async`,
      { data: { parts: [{ type: "text", text: "Sent while the pane was away." }] }, headers: { Origin: baseUrl } },
    );
    if (!prompted.ok()) throw new Error(`prompting through the API: HTTP ${prompted.status()} ${await prompted.text()}`);
    for (const deadline = Date.now() + 60_000; ; ) {
      const list = await context.request.get(`${baseUrl}/sessions/${coding}/opencode/session/${conversationId}/message`);
      const messages = await list.json();
      const asked = messages.findIndex((m) => m.parts.some((p) => p.text === "Sent while the pane was away."));
      const last = messages.at(-1)?.info;
      if (asked >= 0 && asked < messages.length - 1 && last.role === "assistant" && last.finish === "stop") break;
      if (Date.now() > deadline) throw new Error("the turn sent through the API did not finish");
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await page.screenshot({ path: `${outDir}/chat-reconnecting.png` });
    await page.unroute("**/opencode/event**");
    await page.locator("[data-testid=chat-connection][data-state=open]").waitFor({ timeout: 60_000 });
    const ours = consoleErrors.errors.splice(errorsBefore).filter((text) => !/net::ERR_FAILED/.test(text));
    consoleErrors.errors.push(...ours);
    step(`  ${refused} reconnect attempts refused while the turn ran, then connected and caught up`);
    await page.locator("[data-testid=chat-message][data-role=user]", { hasText: "Sent while the pane was away." }).waitFor();
    await page
      .locator("[data-testid=chat-tool][data-tool=bash][data-status=completed]")
      .nth(bashCalls)
      .waitFor({ timeout: 30_000 });

    step("a new conversation starts empty; switching back shows the old one; a reload remembers it");
    const first = await conversations.inputValue();
    await page.getByTestId("chat-new").click();
    await page.waitForFunction((old) => document.querySelector("[data-testid=chat-conversations]").value !== old, first);
    await page.getByText("Ask the agent to do something").waitFor();
    await conversations.selectOption(first);
    await page.locator("[data-testid=chat-message][data-role=user]", { hasText: "Sent while the pane was away." }).waitFor();
    // Rows join the list a few per frame, the last ones first (the chat's windowing): count them
    // once they have stopped joining.
    const count = await page.evaluate(async () => {
      const rows = () => document.querySelectorAll("[data-testid=chat-message]").length;
      const frame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 50)));
      let last = rows();
      for (let same = 0, frames = 0; same < 10 && frames < 400; frames += 1) {
        await frame();
        const now = rows();
        same = now === last ? same + 1 : 0;
        last = now;
      }
      return last;
    });
    await page.reload();
    await page.locator("[data-testid=chat-tool][data-tool=write][data-status=completed]").waitFor({ timeout: 30_000 });
    if ((await conversations.inputValue()) !== first) throw new Error("the selected conversation was not remembered");
    // Rows join the list a few per frame (the chat's windowing), so the count settles after the
    // first rows show.
    const settled = await page
      .waitForFunction((n) => document.querySelectorAll("[data-testid=chat-message]").length === n, count, { timeout: 15_000 })
      .then(() => true, () => false);
    if (!settled) {
      const now = await page.getByTestId("chat-message").count();
      throw new Error(`the reloaded conversation differs: ${now} messages, ${count} before the reload`);
    }

    step("deleting a conversation (confirmed) removes it and opens the remaining one");
    const before = await conversations.locator("option").count();
    await page.getByTestId("chat-delete").click();
    await page.getByTestId("confirm-ok").click();
    await page.waitForFunction(
      (old) => document.querySelector("[data-testid=chat-conversations]").value !== old,
      first,
    );
    if ((await conversations.locator("option").count()) !== before - 1) throw new Error("the conversation is still listed");
    const listed = await context.request.get(`${baseUrl}/sessions/${coding}/opencode/session`);
    if ((await listed.json()).some((session) => session.id === first)) throw new Error("opencode still has the conversation");

    step("the model picker: a prompt with the other model is answered by it, and the choice is remembered");
    const picker = page.getByTestId("chat-model");
    await picker.waitFor();
    const offered = await picker.locator("option").allTextContents();
    if (!offered.some((text) => text.startsWith("e2e-other"))) throw new Error(`the picker offers ${offered.join(" | ")}`);
    await picker.selectOption("e2e-other");
    const conversation = await conversations.inputValue();
    const bashBefore = await page.locator("[data-testid=chat-tool][data-tool=bash][data-status=completed]").count();
    await send(page, "Once more, with the other model.");
    await page
      .locator("[data-testid=chat-tool][data-tool=bash][data-status=completed]")
      .nth(bashBefore)
      .waitFor({ timeout: 60_000 });
    // opencode's own record of the turn: the model it asked the gateway for.
    const deadline = Date.now() + 60_000;
    let lastAssistant;
    for (;;) {
      const answer = await context.request.get(`${baseUrl}/sessions/${coding}/opencode/session/${conversation}/message`);
      const messages = await answer.json();
      lastAssistant = messages.filter((m) => m.info.role === "assistant").at(-1)?.info;
      if (lastAssistant?.time?.completed && lastAssistant.modelID === "e2e-other") break;
      if (Date.now() > deadline) throw new Error(`the last reply's model: ${JSON.stringify(lastAssistant)}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    step(`  answered by ${lastAssistant.providerID}/${lastAssistant.modelID}`);
    await page.reload();
    await page.getByTestId("chat-model").waitFor();
    if ((await page.getByTestId("chat-model").inputValue()) !== "e2e-other") throw new Error("the model choice was not remembered");
    await page.getByTestId("chat-model").selectOption("");

    step("research template: a permission request, approved once");
    await openChat(page, baseUrl, research);
    await send(page, "Please create the file.");
    const asking = page.locator("[data-testid=chat-tool][data-tool=bash]").last();
    await page.getByTestId("permission-approve").waitFor({ timeout: 60_000 });
    if ((await asking.getAttribute("data-status")) !== "running") throw new Error("the tool is not waiting on the request");
    await page.screenshot({ path: `${outDir}/chat-permission.png` });
    await page.getByTestId("permission-approve").click();
    await asking.and(page.locator("[data-status=completed]")).waitFor({ timeout: 60_000 });
    await page.getByTestId("permission-approve").waitFor({ state: "detached" });
    await page.locator("[data-testid=chat-abort]").waitFor({ state: "detached", timeout: 60_000 });

    step("denied: the tool call fails and the agent goes on");
    await send(page, "Once more, please.");
    await page.getByTestId("permission-deny").waitFor({ timeout: 60_000 });
    await page.getByTestId("permission-deny").click();
    await page.locator("[data-testid=chat-tool][data-tool=bash]").last().and(page.locator("[data-status=error]")).waitFor({ timeout: 60_000 });
    await page.getByTestId("permission-deny").waitFor({ state: "detached" });
    await page.locator("[data-testid=chat-abort]").waitFor({ state: "detached", timeout: 60_000 });

    step("stopping a reply that waits on a request");
    await send(page, "And again.");
    await page.getByTestId("permission-approve").waitFor({ timeout: 60_000 });
    await page.getByTestId("chat-abort").click();
    await page.locator("[data-testid=chat-abort]").waitFor({ state: "detached", timeout: 30_000 });
    await page.getByTestId("permission-approve").waitFor({ state: "detached" });
    await page.locator(".chat-note", { hasText: "Stopped." }).waitFor();
    await page.locator("[data-testid=chat-tool][data-tool=bash]").last().and(page.locator("[data-status=error]")).waitFor({ timeout: 30_000 });

    step("Esc in the input stops a reply too");
    await send(page, "And once more.");
    await page.getByTestId("permission-approve").waitFor({ timeout: 60_000 });
    await page.getByTestId("chat-input").press("Escape");
    await page.locator("[data-testid=chat-abort]").waitFor({ state: "detached", timeout: 30_000 });
    await page.getByTestId("permission-approve").waitFor({ state: "detached" });
    await page.locator(".chat-note", { hasText: "Stopped." }).nth(1).waitFor({ timeout: 30_000 });

    step("dark theme");
    for (let i = 0; i < 2; i += 1) {
      if ((await page.evaluate(() => document.documentElement.dataset.theme)) === "dark") break;
      await page.getByTestId("theme-toggle").click();
    }
    await page.screenshot({ path: `${outDir}/chat-dark.png` });
    consoleErrors.check();
  } catch (err) {
    await page.screenshot({ path: `${outDir}/chat-failure.png` }).catch(() => {});
    throw err;
  } finally {
    for (const id of sessions) {
      await context.request.delete(`${baseUrl}/api/sessions/${id}`, { headers: { Origin: baseUrl } }).catch(() => {});
    }
    await context.close();
  }
}
