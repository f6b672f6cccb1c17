// The event stream reducer, fed with real event streams captured from opencode 1.18 through octod's
// proxy (fixtures/*.json: `events` as they arrived, `messages` = GET /session/<id>/message after).
import { describe, expect, it } from "vitest";
import type { Event, Part, ToolPart } from "@opencode-ai/sdk/v2/client";
import {
  chatReducer,
  conversationOf,
  conversationTitle,
  describeError,
  initialChatState,
  isBusy,
  permissionsOf,
  questionsOf,
  sameValue,
  sortedSessions,
  type ChatState,
  type LoadedMessage,
} from "./state";
import bashReply from "./fixtures/bash-reply.json";
import permissionOnce from "./fixtures/permission-once.json";
import writeNew from "./fixtures/write-new.json";
import writeExisting from "./fixtures/write-existing.json";
import abortAtPermission from "./fixtures/abort-at-permission.json";
import modelUnreachable from "./fixtures/model-unreachable.json";
import question from "./fixtures/question.json";

interface Fixture {
  events: unknown[];
  messages: unknown[];
}

const events = (fixture: Fixture) => fixture.events as Event[];
const messages = (fixture: Fixture) => fixture.messages as LoadedMessage[];

function sessionOf(fixture: Fixture): string {
  const first = messages(fixture)[0];
  return first.info.sessionID;
}

function replay(fixture: Fixture, state: ChatState = initialChatState): ChatState {
  return events(fixture).reduce((s, event) => chatReducer(s, { type: "event", event }), state);
}

/** Every state the stream went through, for asserting on the way and not only at the end. */
function states(fixture: Fixture): ChatState[] {
  const all: ChatState[] = [];
  let state = initialChatState;
  for (const event of events(fixture)) {
    state = chatReducer(state, { type: "event", event });
    all.push(state);
  }
  return all;
}

function toolParts(state: ChatState, sessionID: string): ToolPart[] {
  return conversationOf(state, sessionID)
    .messages.flatMap((entry) => entry.parts)
    .filter((part): part is ToolPart => part.type === "tool");
}

function textOf(parts: Part[]): string {
  return parts
    .filter((part) => part.type === "text")
    .map((part) => (part.type === "text" ? part.text : ""))
    .join("");
}

describe("the event stream reducer", () => {
  it("builds from the stream the same conversation the server lists afterwards", () => {
    for (const fixture of [bashReply, permissionOnce, writeNew, writeExisting, abortAtPermission, question] as Fixture[]) {
      const sessionID = sessionOf(fixture);
      const state = replay(fixture);
      const built = conversationOf(state, sessionID).messages;
      const listed = messages(fixture);
      // write-existing continues an earlier conversation: its stream holds only the new turn.
      const expected = listed.slice(listed.length - built.length);
      expect(built.map((entry) => entry.id)).toEqual(expected.map((m) => m.info.id));
      built.forEach((entry, index) => {
        expect(entry.info?.role).toBe(expected[index].info.role);
        expect(entry.info?.time.created).toBe(expected[index].info.time.created);
        expect(entry.parts).toEqual(expected[index].parts);
      });
    }
  });

  it("grows the reply's text with each delta, in order, then settles on the final text", () => {
    const sessionID = sessionOf(bashReply);
    const reply = messages(bashReply).at(-1)!;
    const finalText = textOf(reply.parts);
    expect(finalText).toContain("The file is written.");
    const seen = states(bashReply)
      .map((state) => conversationOf(state, sessionID).messages.find((entry) => entry.id === reply.info.id))
      .map((entry) => (entry ? textOf(entry.parts) : ""));
    const distinct = seen.filter((text, index) => index === 0 || text !== seen[index - 1]);
    // "" → "The file " → "The file is written.\n" → … → the whole reply: several visible steps.
    expect(distinct.length).toBeGreaterThan(5);
    for (let index = 1; index < distinct.length; index += 1) {
      expect(distinct[index].startsWith(distinct[index - 1])).toBe(true);
    }
    expect(distinct.at(-1)).toBe(finalText);
  });

  it("follows a bash tool call from pending through running to completed", () => {
    const sessionID = sessionOf(bashReply);
    const statuses = states(bashReply)
      .map((state) => toolParts(state, sessionID)[0]?.state.status)
      .filter((status, index, all) => status && status !== all[index - 1]);
    expect(statuses).toEqual(["pending", "running", "completed"]);
    const [tool] = toolParts(replay(bashReply), sessionID);
    expect(tool.tool).toBe("bash");
    expect(tool.state.input.command).toContain("agent-loop.txt");
  });

  it("tracks the session's status: busy during the turn, idle at the end", () => {
    const sessionID = sessionOf(bashReply);
    const busy = states(bashReply).map((state) => isBusy(conversationOf(state, sessionID)));
    expect(busy).toContain(true);
    expect(busy.at(-1)).toBe(false);
  });

  it("holds a permission request until it is answered", () => {
    const sessionID = sessionOf(permissionOnce);
    const all = states(permissionOnce);
    const askedAt = events(permissionOnce).findIndex((event) => event.type === "permission.asked");
    const repliedAt = events(permissionOnce).findIndex((event) => event.type === "permission.replied");
    expect(askedAt).toBeGreaterThan(0);
    expect(permissionsOf(all[askedAt - 1], sessionID)).toEqual([]);
    const [request] = permissionsOf(all[askedAt], sessionID);
    expect(request.permission).toBe("bash");
    expect(request.patterns[0]).toContain("agent-loop.txt");
    expect(request.always).toEqual(["echo *"]);
    // It belongs to the tool call shown in the conversation.
    const [tool] = toolParts(all[askedAt], sessionID);
    expect(request.tool?.callID).toBe(tool.callID);
    expect(permissionsOf(all[repliedAt], sessionID)).toEqual([]);
    expect(toolParts(all.at(-1)!, sessionID)[0].state.status).toBe("completed");
  });

  it("holds the agent's question until it is answered", () => {
    const sessionID = sessionOf(question);
    const all = states(question);
    const askedAt = events(question).findIndex((event) => event.type === "question.asked");
    const repliedAt = events(question).findIndex((event) => event.type === "question.replied");
    expect(questionsOf(all[askedAt - 1], sessionID)).toEqual([]);
    const [request] = questionsOf(all[askedAt], sessionID);
    expect(request.questions[0].question).toBe("Which name should the note get?");
    expect(request.questions[0].options.map((option) => option.label)).toEqual(["notes.md", "notes.txt"]);
    expect(request.tool?.callID).toBe(toolParts(all[askedAt], sessionID)[0].callID);
    expect(questionsOf(all[repliedAt], sessionID)).toEqual([]);
    const [tool] = toolParts(all.at(-1)!, sessionID);
    expect(tool.state.status === "completed" && tool.state.output).toContain('="notes.md"');
    // A question left open by an abort goes with the turn, like a permission request.
    const asked = events(question)[askedAt];
    let state = chatReducer(initialChatState, { type: "event", event: asked });
    expect(questionsOf(state, sessionID)).toHaveLength(1);
    state = chatReducer(state, { type: "event", event: { id: "e", type: "session.idle", properties: { sessionID } } as Event });
    expect(questionsOf(state, sessionID)).toEqual([]);
    state = chatReducer(state, { type: "questions-loaded", questions: [asked.properties as never] });
    expect(questionsOf(state, sessionID)).toHaveLength(1);
    state = chatReducer(state, { type: "event", event: { id: "e", type: "question.rejected", properties: { sessionID, requestID: request.id } } as Event });
    expect(questionsOf(state, sessionID)).toEqual([]);
  });

  it("drops a permission request that an abort left unanswered, and records the abort", () => {
    const sessionID = sessionOf(abortAtPermission);
    const all = states(abortAtPermission);
    expect(all.some((state) => permissionsOf(state, sessionID).length === 1)).toBe(true);
    const end = all.at(-1)!;
    expect(permissionsOf(end, sessionID)).toEqual([]);
    const conversation = conversationOf(end, sessionID);
    expect(conversation.error?.name).toBe("MessageAbortedError");
    expect(describeError(conversation.error!)).toBe("Stopped.");
    const [tool] = toolParts(end, sessionID);
    expect(tool.state.status).toBe("error");
    expect(tool.state.status === "error" && tool.state.error).toBe("Tool execution aborted");
    expect(isBusy(conversation)).toBe(false);
  });

  it("shows the model being retried when it cannot be reached", () => {
    const sessionID = sessionOf(modelUnreachable);
    const retries = states(modelUnreachable)
      .map((state) => conversationOf(state, sessionID).status)
      .filter((status) => status.type === "retry");
    expect(retries.length).toBeGreaterThan(0);
    expect(retries[0].type === "retry" && retries[0].message).toMatch(/Cannot connect to API/);
    expect(retries.map((status) => status.type === "retry" && status.attempt)).toContain(3);
    expect(isBusy(conversationOf(replay(modelUnreachable), sessionID))).toBe(false);
  });

  it("keeps write tool calls with their file and whether it existed", () => {
    const created = toolParts(replay(writeNew), sessionOf(writeNew))[0];
    expect(created.tool).toBe("write");
    expect(created.state.status).toBe("completed");
    expect(created.state.input.filePath).toBe("/home/dev/notes.md");
    expect(created.state.status === "completed" && created.state.metadata.exists).toBe(false);
    const overwritten = toolParts(replay(writeExisting), sessionOf(writeExisting))[0];
    expect(overwritten.state.status === "completed" && overwritten.state.metadata.exists).toBe(true);
  });

  it("lists conversations from the stream's session events, newest first", () => {
    const state = replay(writeNew, replay(bashReply));
    const sessions = sortedSessions(state);
    expect(sessions.map((session) => session.id)).toEqual([sessionOf(writeNew), sessionOf(bashReply)]);
    // opencode names a conversation after its first reply.
    expect(sessions[0].title).toBe("The file is written.");
  });

  it("ignores events it does not know, without a new state", () => {
    const state = replay(bashReply);
    for (const type of ["plugin.added", "server.heartbeat", "catalog.updated", "file.watcher.updated"]) {
      const event = { id: "evt_x", type, properties: {} } as unknown as Event;
      expect(chatReducer(state, { type: "event", event })).toBe(state);
    }
  });
});

describe("the reducer's edge cases", () => {
  const sessionID = "ses_1";
  const messageID = "msg_1";
  const info = {
    id: messageID,
    sessionID,
    role: "assistant",
    time: { created: 1 },
  } as unknown as LoadedMessage["info"];
  const event = (type: string, properties: unknown) =>
    ({ type: "event", event: { id: "evt", type, properties } as unknown as Event }) as const;

  it("starts a text part from a delta that outran the part's first update", () => {
    const state = chatReducer(
      initialChatState,
      event("message.part.delta", { sessionID, messageID, partID: "prt_1", field: "text", delta: "Hel" }),
    );
    const next = chatReducer(
      state,
      event("message.part.delta", { sessionID, messageID, partID: "prt_1", field: "text", delta: "lo" }),
    );
    const entry = conversationOf(next, sessionID).messages[0];
    expect(entry.info).toBeUndefined();
    expect(textOf(entry.parts)).toBe("Hello");
    // The message's info arrives later and joins the same entry.
    const withInfo = chatReducer(next, event("message.updated", { sessionID, info }));
    expect(conversationOf(withInfo, sessionID).messages).toHaveLength(1);
    expect(conversationOf(withInfo, sessionID).messages[0].info).toEqual(info);
  });

  it("keeps parts and messages in id order whatever order they arrive in", () => {
    let state = initialChatState;
    for (const id of ["prt_3", "prt_1", "prt_2"]) {
      state = chatReducer(
        state,
        event("message.part.updated", { sessionID, part: { id, sessionID, messageID, type: "text", text: id } }),
      );
    }
    expect(conversationOf(state, sessionID).messages[0].parts.map((p) => p.id)).toEqual(["prt_1", "prt_2", "prt_3"]);
    state = chatReducer(state, event("message.updated", { sessionID, info: { ...info, id: "msg_0" } }));
    expect(conversationOf(state, sessionID).messages.map((m) => m.id)).toEqual(["msg_0", "msg_1"]);
  });

  it("removes parts, messages and deleted sessions with their requests", () => {
    let state = replay(permissionOnce);
    const id = sessionOf(permissionOnce);
    const [first] = conversationOf(state, id).messages;
    state = chatReducer(state, event("message.part.removed", { sessionID: id, messageID: first.id, partID: first.parts[0].id }));
    expect(conversationOf(state, id).messages[0].parts).toHaveLength(first.parts.length - 1);
    state = chatReducer(state, event("message.removed", { sessionID: id, messageID: first.id }));
    expect(conversationOf(state, id).messages.map((m) => m.id)).not.toContain(first.id);
    const asked = events(permissionOnce).find((e) => e.type === "permission.asked")!;
    state = chatReducer(state, { type: "event", event: asked });
    expect(permissionsOf(state, id)).toHaveLength(1);
    state = chatReducer(state, event("session.deleted", { sessionID: id, info: state.sessions[id] }));
    expect(state.sessions[id]).toBeUndefined();
    expect(state.conversations[id]).toBeUndefined();
    expect(permissionsOf(state, id)).toEqual([]);
  });

  it("forgets the last turn's error when the next turn starts", () => {
    let state = replay(abortAtPermission);
    const id = sessionOf(abortAtPermission);
    expect(conversationOf(state, id).error).toBeDefined();
    state = chatReducer(state, event("session.status", { sessionID: id, status: { type: "busy" } }));
    expect(conversationOf(state, id).error).toBeUndefined();
  });

  it("lets the user dismiss an error", () => {
    const id = sessionOf(abortAtPermission);
    const state = chatReducer(replay(abortAtPermission), { type: "dismiss-error", sessionID: id });
    expect(conversationOf(state, id).error).toBeUndefined();
  });

  it("takes the server's list over the stream, but keeps text the stream grew further", () => {
    const id = sessionOf(bashReply);
    const listed = messages(bashReply);
    const reply = listed.at(-1)!;
    const textPart = reply.parts.find((part) => part.type === "text")!;
    // The stream saw the reply's text start and one more message; the list was taken earlier.
    let state = chatReducer(initialChatState, event("message.part.updated", { sessionID: id, part: { ...textPart, text: "" } }));
    state = chatReducer(state, event("message.part.delta", { sessionID: id, messageID: reply.info.id, partID: textPart.id, field: "text", delta: "The file is written. And more" }));
    state = chatReducer(state, event("message.updated", { sessionID: id, info: { ...reply.info, id: "msg_zzzz" } }));
    const older = listed.map((m) => (m.info.id === reply.info.id ? { ...m, parts: m.parts.map((p) => (p.id === textPart.id ? { ...textPart, text: "The file" } : p)) } : m));
    state = chatReducer(state, { type: "messages-loaded", sessionID: id, messages: older });
    const built = conversationOf(state, id).messages;
    expect(built.map((m) => m.id)).toEqual([...listed.map((m) => m.info.id), "msg_zzzz"]);
    expect(textOf(built.find((m) => m.id === reply.info.id)!.parts)).toBe("The file is written. And more");
    // With nothing streamed, the list is taken as it is.
    const fresh = chatReducer(initialChatState, { type: "messages-loaded", sessionID: id, messages: listed });
    expect(conversationOf(fresh, id).messages.map((m) => m.parts)).toEqual(listed.map((m) => m.parts));
  });

  describe("pages of a conversation", () => {
    const id = "ses_paged";
    // Ten messages msg_00…msg_09, each a user prompt of one text part.
    const all: LoadedMessage[] = Array.from({ length: 10 }, (_, i) => {
      const mid = `msg_${String(i).padStart(2, "0")}`;
      return {
        info: { id: mid, sessionID: id, role: "user", time: { created: i } },
        parts: [{ id: `prt_${mid}`, sessionID: id, messageID: mid, type: "text", text: `m${i}` }],
      } as unknown as LoadedMessage;
    });
    const ids = (state: ChatState) => conversationOf(state, id).messages.map((m) => m.id);
    const loaded = (state: ChatState, messages: LoadedMessage[], older?: string, page?: "newest" | "older") =>
      chatReducer(state, { type: "messages-loaded", sessionID: id, messages, older, page });

    it("opens at the newest page and adds older pages before it", () => {
      let state = loaded(initialChatState, all.slice(6), "c6");
      expect(ids(state)).toEqual(["msg_06", "msg_07", "msg_08", "msg_09"]);
      expect(conversationOf(state, id).older).toBe("c6");
      const before = conversationOf(state, id).messages;
      state = loaded(state, all.slice(2, 6), "c2", "older");
      expect(ids(state)).toEqual(all.slice(2).map((m) => m.info.id));
      expect(conversationOf(state, id).older).toBe("c2");
      // The messages shown before keep their objects (they do not re-render).
      expect(conversationOf(state, id).messages.slice(4)).toEqual(before);
      expect(conversationOf(state, id).messages[4]).toBe(before[0]);
      state = loaded(state, all.slice(0, 2), undefined, "older");
      expect(ids(state)).toEqual(all.map((m) => m.info.id));
      expect(conversationOf(state, id).older).toBeUndefined();
    });

    it("keeps the older pages when a reload of the newest page reaches them", () => {
      let state = loaded(initialChatState, all.slice(6), "c6");
      state = loaded(state, all.slice(0, 6), undefined, "older");
      // A reconnect: the newest page again, one message deleted meanwhile, one added.
      const extra = { ...all[9], info: { ...all[9].info, id: "msg_10" } } as LoadedMessage;
      state = loaded(state, [...all.slice(6, 8), all[9], extra], "c6");
      expect(ids(state)).toEqual(["msg_00", "msg_01", "msg_02", "msg_03", "msg_04", "msg_05", "msg_06", "msg_07", "msg_09", "msg_10"]);
      // The start is still loaded: nothing more to ask for.
      expect(conversationOf(state, id).older).toBeUndefined();
    });

    it("starts again from the newest page when it does not reach what is loaded", () => {
      let state = loaded(initialChatState, all.slice(0, 3), "c0");
      // After a long absence the newest page begins past everything loaded: a gap could lie between.
      state = loaded(state, all.slice(7), "c7");
      expect(ids(state)).toEqual(["msg_07", "msg_08", "msg_09"]);
      expect(conversationOf(state, id).older).toBe("c7");
    });

    it("takes a whole conversation from a server that does not page", () => {
      const state = loaded(loaded(initialChatState, all.slice(6), "c6"), all);
      expect(ids(state)).toEqual(all.map((m) => m.info.id));
      expect(conversationOf(state, id).older).toBeUndefined();
    });
  });

  it("loads sessions, statuses and pending permissions", () => {
    const sessions = [
      { id: "ses_a", title: "A", time: { created: 1, updated: 5 } },
      { id: "ses_b", title: "B", time: { created: 2, updated: 9 } },
      { id: "ses_c", title: "child", parentID: "ses_b", time: { created: 3, updated: 10 } },
    ] as unknown as Parameters<typeof sortedSessions>[0]["sessions"][string][];
    let state = chatReducer(initialChatState, { type: "sessions-loaded", sessions });
    expect(sortedSessions(state).map((s) => s.id)).toEqual(["ses_b", "ses_a"]);
    // A session the pane created itself joins the list before its event arrives.
    const created = { id: "ses_d", title: "D", time: { created: 4, updated: 11 } } as unknown as (typeof sessions)[number];
    const withCreated = chatReducer(state, { type: "session-upserted", session: created });
    expect(sortedSessions(withCreated).map((s) => s.id)).toEqual(["ses_d", "ses_b", "ses_a"]);
    // And one it deleted leaves before its event arrives (which then changes nothing).
    const removed = chatReducer(withCreated, { type: "session-removed", sessionID: "ses_d" });
    expect(sortedSessions(removed).map((s) => s.id)).toEqual(["ses_b", "ses_a"]);
    expect(chatReducer(removed, { type: "session-removed", sessionID: "ses_d" })).toBe(removed);
    state = chatReducer(state, { type: "statuses-loaded", statuses: { ses_a: { type: "busy" } } });
    expect(isBusy(conversationOf(state, "ses_a"))).toBe(true);
    expect(isBusy(conversationOf(state, "ses_b"))).toBe(false);
    const request = events(permissionOnce).find((e) => e.type === "permission.asked")!.properties as never;
    state = chatReducer(state, { type: "permissions-loaded", permissions: [request] });
    expect(Object.keys(state.permissions)).toHaveLength(1);
  });

  it("tracks the connection", () => {
    let state = chatReducer(initialChatState, { type: "connection", state: "reconnecting" });
    expect(state.connection).toBe("reconnecting");
    expect(chatReducer(state, { type: "connection", state: "reconnecting" })).toBe(state);
    state = chatReducer(state, event("server.connected", {}));
    expect(state.connection).toBe("open");
  });
});

describe("the reducer keeps what did not change (so the windowed list re-renders only that)", () => {
  const all = [bashReply, permissionOnce, writeNew, writeExisting, abortAtPermission, modelUnreachable, question] as Fixture[];

  /** The message an event is about, if any. */
  function messageOf(event: Event): string | undefined {
    switch (event.type) {
      case "message.updated":
        return event.properties.info.id;
      case "message.part.updated":
        return event.properties.part.messageID;
      case "message.part.delta":
      case "message.part.removed":
      case "message.removed":
        return event.properties.messageID;
      default:
        return undefined;
    }
  }

  it("gives an event's message a new entry and keeps every other message's, in every captured stream", () => {
    let checked = 0;
    for (const fixture of all) {
      const sessionID = sessionOf(fixture);
      let state = initialChatState;
      for (const event of events(fixture)) {
        const before = conversationOf(state, sessionID).messages;
        state = chatReducer(state, { type: "event", event });
        const after = conversationOf(state, sessionID).messages;
        const touched = messageOf(event);
        if (touched === undefined) {
          expect(after, event.type).toBe(before);
          continue;
        }
        const previous = new Map(before.map((entry) => [entry.id, entry]));
        for (const entry of after) {
          if (entry.id === touched || !previous.has(entry.id)) continue;
          expect(entry, `${event.type} of ${touched} kept ${entry.id}`).toBe(previous.get(entry.id));
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(50);
  });

  it("gives a streamed delta's part a new object and keeps the message's other parts", () => {
    const sessionID = sessionOf(bashReply);
    const deltas = events(bashReply).filter((e) => e.type === "message.part.delta");
    expect(deltas.length).toBeGreaterThan(1);
    let state = initialChatState;
    for (const event of events(bashReply)) {
      const before = conversationOf(state, sessionID).messages;
      state = chatReducer(state, { type: "event", event });
      if (event.type !== "message.part.delta") continue;
      const { messageID, partID } = event.properties;
      const old = before.find((entry) => entry.id === messageID)!;
      const now = conversationOf(state, sessionID).messages.find((entry) => entry.id === messageID)!;
      expect(now).not.toBe(old);
      for (const part of now.parts) {
        if (part.id !== partID) expect(part).toBe(old.parts.find((p) => p.id === part.id));
      }
    }
  });

  it("keeps the whole state when a reload lists the same conversation", () => {
    for (const fixture of all) {
      const sessionID = sessionOf(fixture);
      const loaded = chatReducer(initialChatState, { type: "messages-loaded", sessionID, messages: messages(fixture) });
      // The same answer again, parsed anew (a reconnect, the conversation reopened).
      const again = chatReducer(loaded, { type: "messages-loaded", sessionID, messages: structuredClone(messages(fixture)) });
      expect(again).toBe(loaded);
    }
  });

  it("keeps the messages a reload did not change and replaces the one it did", () => {
    const sessionID = sessionOf(writeExisting);
    const listed = messages(writeExisting);
    const loaded = chatReducer(initialChatState, { type: "messages-loaded", sessionID, messages: listed });
    const changed = structuredClone(listed);
    const last = changed.at(-1)!;
    last.parts = last.parts.map((part) => (part.type === "text" ? { ...part, text: `${part.text} (edited)` } : part));
    const before = conversationOf(loaded, sessionID).messages;
    const after = conversationOf(chatReducer(loaded, { type: "messages-loaded", sessionID, messages: changed }), sessionID).messages;
    expect(after).not.toBe(before);
    after.slice(0, -1).forEach((entry, i) => expect(entry).toBe(before[i]));
    expect(after.at(-1)).not.toBe(before.at(-1));
    // Within the changed message, the parts that are the same are kept too.
    const [oldParts, newParts] = [before.at(-1)!.parts, after.at(-1)!.parts];
    newParts.forEach((part, i) => (part.type === "text" ? expect(part).not.toBe(oldParts[i]) : expect(part).toBe(oldParts[i])));
  });

  it("keeps what the stream built when the list taken afterwards says the same", () => {
    const sessionID = sessionOf(bashReply);
    const streamed = replay(bashReply);
    const built = conversationOf(streamed, sessionID).messages;
    const listed = messages(bashReply);
    const after = conversationOf(chatReducer(streamed, { type: "messages-loaded", sessionID, messages: listed }), sessionID).messages;
    let kept = 0;
    built.forEach((entry, i) => {
      const same = sameValue(entry.info, listed[i].info) && sameValue(entry.parts, listed[i].parts);
      if (same) expect(entry).toBe(after[i]);
      // Parts equal to the listed ones stay the same objects even where the message's info changed.
      entry.parts.forEach((part, j) => {
        if (!sameValue(part, listed[i].parts[j])) return;
        expect(after[i].parts[j]).toBe(part);
        kept++;
      });
    });
    expect(kept).toBeGreaterThan(0);
  });

  it("does not make a new list for a removal of what is not there", () => {
    const sessionID = sessionOf(bashReply);
    const state = replay(bashReply);
    const event = (type: string, properties: unknown) => ({ type: "event", event: { type, properties } as unknown as Event }) as const;
    expect(chatReducer(state, event("message.removed", { sessionID, messageID: "msg_none" }))).toBe(state);
    const first = conversationOf(state, sessionID).messages[0];
    expect(chatReducer(state, event("message.part.removed", { sessionID, messageID: first.id, partID: "prt_none" }))).toBe(state);
  });
});

describe("sameValue", () => {
  it("compares JSON values deeply", () => {
    expect(sameValue({ a: [1, "x", { b: null }] }, { a: [1, "x", { b: null }] })).toBe(true);
    expect(sameValue({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(sameValue({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(sameValue({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(sameValue([1], { 0: 1 })).toBe(false);
    expect(sameValue({ a: "x" }, { a: "y" })).toBe(false);
    expect(sameValue(null, {})).toBe(false);
  });
});

describe("conversationTitle", () => {
  it("keeps opencode's generated titles and turns its placeholder into a readable one", () => {
    expect(conversationTitle({ title: "The file is written.", time: { created: 0 } })).toBe("The file is written.");
    const placeholder = conversationTitle({ title: "New session - 2026-11-24T08:33:18.471Z", time: { created: 0 } });
    expect(placeholder).toMatch(/^New conversation · /);
    expect(placeholder).not.toContain("2026-11-24T");
    expect(conversationTitle({ title: "", time: { created: 0 } })).toMatch(/^New conversation · /);
  });
});

describe("describeError", () => {
  it("says what failed, with the provider's words", () => {
    expect(
      describeError({ name: "APIError", data: { message: "rate limited", statusCode: 429, isRetryable: true } }),
    ).toBe("The model's API failed (HTTP 429): rate limited");
    // Octo's model gateway past a budget: its message alone.
    expect(
      describeError({
        name: "APIError",
        data: { message: "monthly token budget of 1 reached; resets on 2027-01-01", statusCode: 402, isRetryable: false },
      }),
    ).toBe("monthly token budget of 1 reached; resets on 2027-01-01");
    expect(describeError({ name: "ProviderAuthError", data: { providerID: "octo", message: "bad key" } })).toBe(
      "The model provider octo refused the credentials: bad key",
    );
    expect(describeError({ name: "UnknownError", data: { message: "boom" } })).toBe("UnknownError: boom");
    expect(describeError({ name: "MessageOutputLengthError", data: {} })).toMatch(/output limit/);
  });
});
