// @vitest-environment jsdom
// The windowed message list with a long conversation (the captured bash reply repeated), on a
// stand-in layout (jsdom lays nothing out: every message is ROW px tall, the viewport VIEW px):
// which messages are in the DOM at the end, at the top, for focus and pending requests, and which
// messages re-render while a reply streams. Real layout and scrolling are the browser checks'
// (e2e/46-long-chat) and the bench's.
import { act, memo } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Event } from "@opencode-ai/sdk/v2/client";
import type { PermissionHandlers } from "./MessageView";
import { chatReducer, conversationOf, initialChatState, type ChatState, type LoadedMessage, type MessageEntry } from "./state";
import bashReply from "./fixtures/bash-reply.json";

const { renders } = vi.hoisted(() => ({ renders: new Map<string, number>() }));

// MessageView, counting its renders per message (the real one renders).
vi.mock("./MessageView", async (importOriginal) => {
  const actual = await importOriginal<typeof import("./MessageView")>();
  const render = (actual.MessageView as unknown as { type: (props: { entry: MessageEntry }) => JSX.Element }).type;
  return {
    ...actual,
    MessageView: memo(function Counted(props: { entry: MessageEntry; permissions: PermissionHandlers }) {
      renders.set(props.entry.id, (renders.get(props.entry.id) ?? 0) + 1);
      return render(props);
    }),
  };
});

const { MessageList, estimateHeight } = await import("./MessageList");

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

/** Animation frames asked for and not run yet. */
const queued: FrameRequestCallback[] = [];

/** Runs the frames asked for, and those they ask for, until none is left. */
function frames() {
  for (let i = 0; i < 200 && queued.length > 0; i++) act(() => queued.splice(0).forEach((callback) => callback(0)));
}

const ROW = 100;
const VIEW = 600;

beforeAll(() => {
  // The stand-in layout: rows ROW px, gaps their style's height, the list's viewport VIEW px.
  vi.spyOn(HTMLElement.prototype, "getBoundingClientRect").mockImplementation(function (this: HTMLElement) {
    const height = this.classList.contains("chat-row") ? ROW : 0;
    return { top: 0, left: 0, right: 0, bottom: height, width: 0, height, x: 0, y: 0, toJSON: () => ({}) } as DOMRect;
  });
  Object.defineProperty(HTMLElement.prototype, "clientHeight", {
    configurable: true,
    get(this: HTMLElement) {
      return this.classList.contains("chat-messages") ? VIEW : 0;
    },
  });
  Object.defineProperty(HTMLElement.prototype, "scrollHeight", {
    configurable: true,
    get(this: HTMLElement) {
      if (!this.classList.contains("chat-messages")) return 0;
      const gaps = [...this.querySelectorAll<HTMLElement>(".chat-gap")].reduce((sum, gap) => sum + parseFloat(gap.style.height), 0);
      const rows = [...this.querySelectorAll<HTMLElement>(".chat-row")].reduce((sum, row) => sum + row.getBoundingClientRect().height, 0);
      return gaps + rows;
    },
  });
  // Frames run when the test says (`frames()`): the list adds rows a few per frame.
  vi.stubGlobal("requestAnimationFrame", (callback: FrameRequestCallback) => queued.push(callback));
  vi.stubGlobal("cancelAnimationFrame", () => {});
  globalThis.ResizeObserver = class {
    observe() {}
    unobserve() {}
    disconnect() {}
  } as unknown as typeof ResizeObserver;
});

/** `count` messages: bash-reply's three repeated, ids in conversation order. */
function longConversation(count: number): { state: ChatState; sessionID: string } {
  const fixture = bashReply.messages as unknown as LoadedMessage[];
  const sessionID = fixture[0].info.sessionID;
  const messages: LoadedMessage[] = [];
  for (let i = 0; messages.length < count; i++) {
    for (const template of fixture) {
      if (messages.length >= count) break;
      const m = structuredClone(template);
      const id = `msg_${String(i).padStart(4, "0")}_${messages.length % 3}`;
      m.info.id = id;
      m.parts = m.parts.map((part) => ({ ...part, id: `${part.id}_${id}`, messageID: id }));
      messages.push(m);
    }
  }
  return { state: chatReducer(initialChatState, { type: "messages-loaded", sessionID, messages }), sessionID };
}

const handlers: PermissionHandlers = { byCall: new Map(), questionsByCall: new Map(), onReply: async () => {}, onAnswer: async () => {} };

let root: Root | undefined;
let container: HTMLDivElement;
afterEach(() => {
  act(() => root?.unmount());
  queued.length = 0;
  root = undefined;
  container?.remove();
  renders.clear();
});

function mount(entries: MessageEntry[], pinned: ReadonlySet<string> = new Set()) {
  container = document.createElement("div");
  document.body.append(container);
  root = createRoot(container);
  const show = (next: MessageEntry[], pins = pinned) => {
    act(() => root!.render(<MessageList entries={next} permissions={handlers} pinned={pins} conversation="c" busy={false} />));
    frames();
  };
  show(entries);
  const scroller = container.querySelector<HTMLElement>("[data-testid=chat-messages]")!;
  const shown = () => [...container.querySelectorAll<HTMLElement>("[data-testid=chat-message]")].map((m) => m.dataset.messageId!);
  const scrollTo = (top: number) => {
    act(() => {
      scroller.scrollTop = top;
      scroller.dispatchEvent(new window.Event("scroll"));
    });
    frames();
  };
  return { show, shown, scroller, scrollTo };
}

describe("MessageList", () => {
  const { state, sessionID } = longConversation(500);
  const entries = conversationOf(state, sessionID).messages;
  const ids = entries.map((entry) => entry.id);
  // The viewport and half of it either side, and the row cut at each edge.
  const window = (2 * VIEW) / ROW + 2;

  it("opens at the end with only the last messages in the DOM", () => {
    const { shown, scroller } = mount(entries);
    expect(shown().length).toBeGreaterThan(VIEW / ROW);
    expect(shown().length).toBeLessThanOrEqual(window);
    expect(shown().at(-1)).toBe(ids.at(-1));
    expect(scroller.scrollTop).toBe(scroller.scrollHeight - VIEW);
    // One gap above stands for every message not rendered, at its estimated height (or its
    // measured one, for the few rendered on the way to the end).
    const gaps = [...container.querySelectorAll<HTMLElement>(".chat-rows > *")].filter((child) => child.classList.contains("chat-gap"));
    expect(gaps).toHaveLength(1);
    expect(container.querySelector(".chat-rows")!.firstElementChild).toBe(gaps[0]);
    const estimated = entries.slice(0, 500 - shown().length).reduce((sum, entry) => sum + estimateHeight(entry), 0);
    expect(Math.abs(parseFloat(gaps[0].style.height) - estimated)).toBeLessThan(window * ROW);
  });

  it("shows the first messages at the top and the last ones back at the end", () => {
    const { shown, scrollTo, scroller } = mount(entries);
    scrollTo(0);
    expect(shown()[0]).toBe(ids[0]);
    expect(shown().length).toBeLessThanOrEqual(window);
    expect(shown()).not.toContain(ids.at(-1));
    scrollTo(scroller.scrollHeight / 2);
    const middle = shown().map((id) => ids.indexOf(id));
    expect(middle[0]).toBeGreaterThan(100);
    expect(middle.at(-1)).toBeLessThan(400);
    expect(middle).toEqual(middle.map((_, i) => middle[0] + i)); // in order, none missing
    scrollTo(scroller.scrollHeight);
    expect(shown().at(-1)).toBe(ids.at(-1));
  });

  it("re-renders only the message a streamed delta grows", () => {
    const { show } = mount(entries);
    // The last reply with text (the last message is a tool call).
    const last = entries.findLast((entry) => entry.info?.role === "assistant" && entry.parts.some((p) => p.type === "text"))!;
    const part = last.parts.find((p) => p.type === "text")!;
    expect(renders.get(last.id)).toBe(1);
    let next = state;
    const counts = () => new Map(renders);
    for (const delta of [" More", " and more", " text."]) {
      const before = counts();
      const event = { type: "message.part.delta", properties: { sessionID, messageID: last.id, partID: part.id, field: "text", delta } } as Event;
      next = chatReducer(next, { type: "event", event });
      show(conversationOf(next, sessionID).messages);
      for (const [id, count] of renders) expect(count, id).toBe(id === last.id ? (before.get(id) ?? 0) + 1 : before.get(id));
    }
    expect(container.textContent).toContain("More and more text.");
  });

  it("keeps the message holding focus rendered when it is scrolled away", () => {
    const { shown, scrollTo } = mount(entries);
    const summary = container.querySelector<HTMLElement>(`[data-message-id="${ids.at(-1)}"] summary`)!;
    act(() => summary.focus());
    expect(document.activeElement).toBe(summary);
    scrollTo(0);
    expect(shown()).toContain(ids[0]);
    expect(shown()).toContain(ids.at(-1));
    expect(document.activeElement).toBe(summary);
    // Once focus leaves, it goes like the others.
    act(() => summary.blur());
    expect(shown()).not.toContain(ids.at(-1));
  });

  it("keeps pinned messages (a pending request's) rendered wherever the list is scrolled", () => {
    const { shown, scrollTo, scroller } = mount(entries, new Set([ids[3]]));
    expect(shown()).toContain(ids[3]);
    expect(shown().at(-1)).toBe(ids.at(-1));
    scrollTo(scroller.scrollHeight / 2);
    expect(shown()).toContain(ids[3]);
    expect(shown()).not.toContain(ids[4]);
  });

  it("follows new content at the end, but not what the user opens there", () => {
    const { scroller, show } = mount(entries);
    const grow = (key: string, by: number) => {
      const spy = vi.mocked(HTMLElement.prototype.getBoundingClientRect);
      const base = spy.getMockImplementation()!;
      spy.mockImplementation(function (this: HTMLElement) {
        const box = base.call(this);
        return this.dataset.rowKey === key ? ({ ...box, height: ROW + by, bottom: ROW + by } as DOMRect) : box;
      });
      return () => spy.mockImplementation(base);
    };
    // The last message grows (a reply streaming): the end stays in view.
    const end = scroller.scrollTop;
    let restore = grow(ids.at(-1)!, 300);
    try {
      show([...entries]);
      expect(scroller.scrollTop).toBe(end + 300);
      expect(scroller.scrollTop).toBe(scroller.scrollHeight - VIEW);
    } finally {
      restore();
    }
    // The user opens its tool card: the view stays where it was.
    const before = scroller.scrollTop;
    act(() => container.querySelector<HTMLElement>(`[data-message-id="${ids.at(-1)}"] summary`)!.click());
    restore = grow(ids.at(-1)!, 900);
    try {
      show([...entries]);
      expect(scroller.scrollTop).toBe(before);
      expect(scroller.scrollHeight - VIEW).toBe(before + 600);
    } finally {
      restore();
    }
  });

  it("adds an opening conversation's rows a few per frame, the last ones first", () => {
    container = document.createElement("div");
    document.body.append(container);
    root = createRoot(container);
    act(() => root!.render(<MessageList entries={entries} permissions={handlers} pinned={new Set()} conversation="c" busy={false} />));
    const shown = () => [...container.querySelectorAll<HTMLElement>("[data-testid=chat-message]")].map((m) => m.dataset.messageId!);
    expect(shown()).toEqual(ids.slice(-3));
    frames();
    expect(shown().length).toBeGreaterThan(VIEW / ROW);
    expect(shown().at(-1)).toBe(ids.at(-1));
  });

  it("keeps the view on the same message when one above it turns out taller", () => {
    const { scrollTo, scroller, show, shown } = mount(entries);
    scrollTo(scroller.scrollHeight / 2);
    const top = scroller.scrollTop;
    // A message above the viewport (rendered: overscan) grows, say its tool card was opened; the
    // next render measures it.
    const taller = shown()[0];
    const spy = vi.mocked(HTMLElement.prototype.getBoundingClientRect);
    const base = spy.getMockImplementation()!;
    spy.mockImplementation(function (this: HTMLElement) {
      const box = base.call(this);
      return this.dataset.rowKey === taller ? ({ ...box, height: ROW + 400, bottom: ROW + 400 } as DOMRect) : box;
    });
    try {
      show([...entries]);
      expect(scroller.scrollTop).toBe(top + 400);
    } finally {
      spy.mockImplementation(base);
    }
  });
});
