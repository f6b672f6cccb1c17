// @vitest-environment jsdom
// The message view rendered from real captured streams: the contract's test ids and attributes,
// tool cards, the diff, and the permission and question prompts calling back.
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, describe, expect, it } from "vitest";
import type { Event, PermissionRequest, QuestionRequest } from "@opencode-ai/sdk/v2/client";
import { MessageView, callKey, type PermissionHandlers } from "./MessageView";
import { chatReducer, conversationOf, initialChatState, type ChatState } from "./state";
import bashReply from "./fixtures/bash-reply.json";
import writeNew from "./fixtures/write-new.json";
import permissionOnce from "./fixtures/permission-once.json";
import question from "./fixtures/question.json";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

type Fixture = { events: unknown[] };
const replayUntil = (fixture: Fixture, stop?: (event: Event) => boolean): ChatState => {
  let state = initialChatState;
  for (const event of fixture.events as Event[]) {
    state = chatReducer(state, { type: "event", event });
    if (stop?.(event)) break;
  }
  return state;
};

let root: Root | undefined;
let container: HTMLDivElement;
afterEach(() => {
  act(() => root?.unmount());
  container?.remove();
});

function render(state: ChatState, handlers: Partial<PermissionHandlers> = {}): HTMLDivElement {
  const sessionID = Object.keys(state.conversations)[0];
  const full: PermissionHandlers = {
    byCall: new Map(),
    questionsByCall: new Map(),
    onReply: async () => {},
    onAnswer: async () => {},
    ...handlers,
  };
  container = document.createElement("div");
  document.body.append(container);
  root = createRoot(container);
  act(() => {
    root!.render(
      <>
        {conversationOf(state, sessionID).messages.map((entry) => (
          <MessageView key={entry.id} entry={entry} permissions={full} />
        ))}
      </>,
    );
  });
  return container;
}

describe("MessageView", () => {
  it("renders the user's prompt, the bash call and the reply with the contract's test ids", () => {
    const view = render(replayUntil(bashReply));
    const messages = [...view.querySelectorAll("[data-testid=chat-message]")];
    expect(messages.map((m) => m.getAttribute("data-role"))).toEqual(["user", "assistant", "assistant"]);
    expect(messages[0].textContent).toBe("Please create the file.");
    const tool = view.querySelector("[data-testid=chat-tool]")!;
    expect(tool.getAttribute("data-tool")).toBe("bash");
    expect(tool.getAttribute("data-status")).toBe("completed");
    // Completed bash calls start folded, their body not rendered (a long output costs nothing);
    // the reply's text is there (as plain text until Markdown loads).
    expect((tool as HTMLDetailsElement).open).toBe(false);
    expect(tool.querySelector(".chat-terminal")).toBeNull();
    expect(messages[2].textContent).toContain("The file is written.");
    act(() => {
      (tool as HTMLDetailsElement).open = true;
      tool.dispatchEvent(new window.Event("toggle"));
    });
    expect(tool.querySelector(".chat-terminal")?.textContent).toContain("$ echo 'written by the agent");
  });

  it("renders a write as an open diff with its counts", () => {
    const view = render(replayUntil(writeNew));
    const tool = view.querySelector("[data-testid=chat-tool][data-tool=write]") as HTMLDetailsElement;
    expect(tool.open).toBe(true);
    expect(tool.querySelector(".chat-tool-summary")?.textContent).toBe("Create /home/dev/notes.md");
    expect(tool.querySelector(".chat-tool-counts")?.textContent).toBe("+4 −0");
    expect([...tool.querySelectorAll(".diff-add .diff-text")].map((l) => l.textContent)).toEqual([
      "# Notes",
      " ",
      "- written by the stub model",
      "- through opencode's write tool",
    ]);
  });

  it("asks for permission at the waiting tool call and sends the chosen answer", async () => {
    const state = replayUntil(permissionOnce, (event) => event.type === "permission.asked");
    const request = Object.values(state.permissions)[0] as PermissionRequest;
    const replies: string[] = [];
    const view = render(state, {
      byCall: new Map([[callKey(request.tool!.messageID, request.tool!.callID), request]]),
      onReply: async (_, reply) => {
        replies.push(reply);
      },
    });
    const tool = view.querySelector("[data-testid=chat-tool]")!;
    expect(tool.getAttribute("data-status")).toBe("running");
    expect(tool.querySelector(".chat-tool-status")?.textContent).toBe("Waiting for you");
    for (const id of ["permission-approve", "permission-always", "permission-deny"]) {
      await act(async () => (view.querySelector(`[data-testid=${id}]`) as HTMLButtonElement).click());
    }
    expect(replies).toEqual(["once", "always", "reject"]);
  });

  it("asks the agent's question and sends the picked option or a typed answer", async () => {
    const state = replayUntil(question, (event) => event.type === "question.asked");
    const request = Object.values(state.questions)[0] as QuestionRequest;
    const answers: (string[][] | undefined)[] = [];
    const view = render(state, {
      questionsByCall: new Map([[callKey(request.tool!.messageID, request.tool!.callID), request]]),
      onAnswer: async (_, value) => {
        answers.push(value);
      },
    });
    const submit = view.querySelector("[data-testid=question-submit]") as HTMLButtonElement;
    expect(submit.disabled).toBe(true); // nothing picked yet
    const options = [...view.querySelectorAll<HTMLInputElement>("[data-testid=question-option]")];
    expect(options.map((o) => o.value)).toEqual(["notes.md", "notes.txt"]);
    await act(async () => options[1].click());
    expect(submit.disabled).toBe(false);
    await act(async () => submit.click());
    await act(async () => (view.querySelector("[data-testid=question-dismiss]") as HTMLButtonElement).click());
    // Typing an answer replaces the picked option (a single-choice question).
    const custom = view.querySelector("[data-testid=question-custom]") as HTMLInputElement;
    await act(async () => {
      Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!.set!.call(custom, "ideas.md");
      custom.dispatchEvent(new Event("input", { bubbles: true }));
    });
    expect(options[1].checked).toBe(false);
    await act(async () => submit.click());
    expect(answers).toEqual([[["notes.txt"]], undefined, [["ideas.md"]]]);
  });
});
