// The event stream reducer: opencode's events (from `GET /event`, through octod's proxy) and the
// answers of the initial loads → the chat's state (conversations = opencode sessions, their
// messages and parts, tool states, pending permission requests, status and errors). Pure: no I/O,
// no DOM; every update returns new objects for what changed and the same objects for what did not
// (React compares by reference): a streamed delta makes a new entry for its message only, and a
// reload keeps every message that is as it was, so the list re-renders only what changed.
//
// Event shapes are those of `@opencode-ai/sdk/v2` (the API of the opencode 1.x in the session
// image); `fixtures/` holds real captured streams that the tests replay.
import type {
  Event,
  Message,
  Part,
  PermissionRequest,
  QuestionRequest,
  Session,
  SessionStatus,
} from "@opencode-ai/sdk/v2/client";

/** A message and its parts (sorted by id, which opencode makes ascending in time). */
export interface MessageEntry {
  id: string;
  /** Undefined while only parts of it have arrived (its `message.updated` comes later). */
  info?: Message;
  parts: Part[];
}

/** What `session.error` carries (the SDK's union of named errors). */
export type SessionError = NonNullable<Extract<Event, { type: "session.error" }>["properties"]["error"]>;

export interface Conversation {
  /** Sorted by id. */
  messages: MessageEntry[];
  status: SessionStatus;
  /** The last `session.error`, until the next turn starts. */
  error?: SessionError;
  /** opencode's cursor for the messages before the oldest loaded one; absent once the
   * conversation's start is loaded (conversations load newest page first). */
  older?: string;
}

export type ConnectionState = "connecting" | "open" | "reconnecting";

export interface ChatState {
  /** opencode sessions by id: the conversations the user can switch between. */
  sessions: Record<string, Session>;
  conversations: Record<string, Conversation>;
  /** Pending permission requests by request id. */
  permissions: Record<string, PermissionRequest>;
  /** Pending questions of the agent (its `question` tool) by request id. */
  questions: Record<string, QuestionRequest>;
  connection: ConnectionState;
}

export interface LoadedMessage {
  info: Message;
  parts: Part[];
}

export type ChatAction =
  | { type: "event"; event: Event }
  | { type: "sessions-loaded"; sessions: Session[] }
  | { type: "session-upserted"; session: Session }
  | { type: "session-removed"; sessionID: string }
  | {
      type: "messages-loaded";
      sessionID: string;
      /** A page of the conversation, oldest first (or all of it). */
      messages: LoadedMessage[];
      /** The cursor of the messages before this page; absent when it reaches the start. */
      older?: string;
      /** `newest` (the default): the conversation's end, loaded on opening and after each
       * reconnect; `older`: the page before the oldest loaded message. */
      page?: "newest" | "older";
    }
  | { type: "statuses-loaded"; statuses: Record<string, SessionStatus> }
  | { type: "permissions-loaded"; permissions: PermissionRequest[] }
  | { type: "questions-loaded"; questions: QuestionRequest[] }
  | { type: "connection"; state: ConnectionState }
  | { type: "dismiss-error"; sessionID: string };

const IDLE: SessionStatus = { type: "idle" };

export const initialChatState: ChatState = {
  sessions: {},
  conversations: {},
  permissions: {},
  questions: {},
  connection: "connecting",
};

export function emptyConversation(): Conversation {
  return { messages: [], status: IDLE };
}

export function chatReducer(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case "event":
      return applyEvent(state, action.event);
    case "sessions-loaded": {
      const sessions: Record<string, Session> = {};
      for (const session of action.sessions) sessions[session.id] = session;
      return { ...state, sessions };
    }
    case "session-upserted":
      return { ...state, sessions: { ...state.sessions, [action.session.id]: action.session } };
    case "session-removed":
      return removeSession(state, action.sessionID);
    case "messages-loaded":
      return updateConversation(state, action.sessionID, (conversation) => loadedPage(conversation, action));
    case "statuses-loaded": {
      let next = state;
      for (const [sessionID, status] of Object.entries(action.statuses)) {
        next = setStatus(next, sessionID, status);
      }
      return next;
    }
    case "permissions-loaded": {
      const permissions: Record<string, PermissionRequest> = {};
      for (const request of action.permissions) permissions[request.id] = request;
      return { ...state, permissions };
    }
    case "questions-loaded": {
      const questions: Record<string, QuestionRequest> = {};
      for (const request of action.questions) questions[request.id] = request;
      return { ...state, questions };
    }
    case "connection":
      return state.connection === action.state ? state : { ...state, connection: action.state };
    case "dismiss-error":
      return updateConversation(state, action.sessionID, (conversation) =>
        conversation.error ? { ...conversation, error: undefined } : conversation,
      );
  }
}

function applyEvent(state: ChatState, event: Event): ChatState {
  switch (event.type) {
    case "session.created":
    case "session.updated": {
      const info = event.properties.info;
      return { ...state, sessions: { ...state.sessions, [info.id]: info } };
    }
    case "session.deleted":
      return removeSession(state, event.properties.info.id);
    case "session.status":
      return setStatus(state, event.properties.sessionID, event.properties.status);
    case "session.idle":
      return setStatus(state, event.properties.sessionID, IDLE);
    case "session.error": {
      const { sessionID, error } = event.properties;
      if (!sessionID || !error) return state;
      return updateConversation(state, sessionID, (conversation) => ({ ...conversation, error }));
    }
    case "message.updated": {
      const info = event.properties.info;
      return updateConversation(state, info.sessionID, (conversation) => ({
        ...conversation,
        messages: upsertEntry(conversation.messages, info.id, (entry) => ({ ...entry, info })),
      }));
    }
    case "message.removed": {
      const { sessionID, messageID } = event.properties;
      return updateConversation(state, sessionID, (conversation) =>
        conversation.messages.some((entry) => entry.id === messageID)
          ? { ...conversation, messages: conversation.messages.filter((entry) => entry.id !== messageID) }
          : conversation,
      );
    }
    case "message.part.updated": {
      const part = event.properties.part;
      return updateConversation(state, part.sessionID, (conversation) => ({
        ...conversation,
        messages: upsertEntry(conversation.messages, part.messageID, (entry) => ({
          ...entry,
          parts: upsertSorted(entry.parts, part),
        })),
      }));
    }
    case "message.part.delta": {
      const { sessionID, messageID, partID, field, delta } = event.properties;
      return updateConversation(state, sessionID, (conversation) => ({
        ...conversation,
        messages: upsertEntry(conversation.messages, messageID, (entry) => {
          const index = entry.parts.findIndex((part) => part.id === partID);
          if (index < 0) {
            // The delta outran its part's first update: start a text part with it.
            if (field !== "text") return entry;
            const part: Part = { id: partID, sessionID, messageID, type: "text", text: delta };
            return { ...entry, parts: upsertSorted(entry.parts, part) };
          }
          const part = entry.parts[index] as unknown as Record<string, unknown>;
          const current = part[field];
          if (current !== undefined && typeof current !== "string") return entry;
          const parts = entry.parts.slice();
          parts[index] = { ...part, [field]: (current ?? "") + delta } as unknown as Part;
          return { ...entry, parts };
        }),
      }));
    }
    case "message.part.removed": {
      const { sessionID, messageID, partID } = event.properties;
      return updateConversation(state, sessionID, (conversation) => {
        const index = conversation.messages.findIndex((entry) => entry.id === messageID);
        const entry = conversation.messages[index];
        if (!entry || !entry.parts.some((part) => part.id === partID)) return conversation;
        const messages = conversation.messages.slice();
        messages[index] = { ...entry, parts: entry.parts.filter((part) => part.id !== partID) };
        return { ...conversation, messages };
      });
    }
    case "permission.asked":
      return {
        ...state,
        permissions: { ...state.permissions, [event.properties.id]: event.properties },
      };
    case "permission.replied": {
      const id = event.properties.requestID;
      if (!(id in state.permissions)) return state;
      const permissions = { ...state.permissions };
      delete permissions[id];
      return { ...state, permissions };
    }
    case "question.asked":
      return { ...state, questions: { ...state.questions, [event.properties.id]: event.properties } };
    case "question.replied":
    case "question.rejected": {
      const id = event.properties.requestID;
      if (!(id in state.questions)) return state;
      const questions = { ...state.questions };
      delete questions[id];
      return { ...state, questions };
    }
    case "server.connected":
      return state.connection === "open" ? state : { ...state, connection: "open" };
    default:
      return state;
  }
}

function removeSession(state: ChatState, id: string): ChatState {
  if (!(id in state.sessions) && !(id in state.conversations)) return state;
  const sessions = { ...state.sessions };
  delete sessions[id];
  const conversations = { ...state.conversations };
  delete conversations[id];
  return {
    ...state,
    sessions,
    conversations,
    permissions: withoutSession(state.permissions, id),
    questions: withoutSession(state.questions, id),
  };
}

function setStatus(state: ChatState, sessionID: string, status: SessionStatus): ChatState {
  let next = updateConversation(state, sessionID, (conversation) => ({
    ...conversation,
    status,
    // A new turn starts: the last turn's error is history.
    error: status.type === "busy" && conversation.status.type === "idle" ? undefined : conversation.error,
  }));
  if (status.type === "idle") {
    // An aborted turn leaves its requests unanswered and never says so.
    const permissions = withoutSession(next.permissions, sessionID);
    const questions = withoutSession(next.questions, sessionID);
    if (permissions !== next.permissions || questions !== next.questions) next = { ...next, permissions, questions };
  }
  return next;
}

function withoutSession<T extends { sessionID: string }>(requests: Record<string, T>, sessionID: string): Record<string, T> {
  const kept = Object.entries(requests).filter(([, request]) => request.sessionID !== sessionID);
  return kept.length === Object.keys(requests).length ? requests : Object.fromEntries(kept);
}

function updateConversation(
  state: ChatState,
  sessionID: string,
  update: (conversation: Conversation) => Conversation,
): ChatState {
  const current = state.conversations[sessionID] ?? emptyConversation();
  const next = update(current);
  if (next === current && sessionID in state.conversations) return state;
  return { ...state, conversations: { ...state.conversations, [sessionID]: next } };
}

/** Inserts or updates the entry `id`, keeping the list sorted by id. */
function upsertEntry(
  entries: MessageEntry[],
  id: string,
  update: (entry: MessageEntry) => MessageEntry,
): MessageEntry[] {
  const index = entries.findIndex((entry) => entry.id === id);
  if (index >= 0) {
    const next = entries.slice();
    next[index] = update(entries[index]);
    return next;
  }
  return upsertSorted(entries, update({ id, parts: [] }));
}

/** Replaces the item with the same id, or inserts it at its place in id order. */
function upsertSorted<T extends { id: string }>(items: T[], item: T): T[] {
  const index = items.findIndex((other) => other.id === item.id);
  if (index >= 0) {
    const next = items.slice();
    next[index] = item;
    return next;
  }
  let at = items.length;
  while (at > 0 && items[at - 1].id > item.id) at -= 1;
  return [...items.slice(0, at), item, ...items.slice(at)];
}

/** A conversation with a loaded page merged in. The page stands for every message from its first
 * (or the start, when it has no `older` cursor) to its last; what the conversation holds outside
 * that span stays: the stream's newer messages, and older pages loaded before. A newest page
 * keeps the older pages only when it reaches them (its first message is one of theirs); after a
 * longer absence a gap could lie between, so the conversation starts again from this page. */
function loadedPage(
  conversation: Conversation,
  action: Extract<ChatAction, { type: "messages-loaded" }>,
): Conversation {
  const current = conversation.messages;
  const first = action.messages[0]?.info.id;
  let older = action.older;
  let below: MessageEntry[] = [];
  if (action.older !== undefined && first !== undefined) {
    const joins = action.page === "older" || current.some((entry) => entry.id === first);
    if (joins) {
      below = current.filter((entry) => entry.id < first);
      if (action.page !== "older" && below.length > 0) older = conversation.older;
    }
  }
  const messages = mergeLoaded(current, action.messages, below);
  if (messages === current && older === conversation.older) return conversation;
  return { ...conversation, messages, older };
}

/**
 * The server's list of messages replaces what the stream built, except text that the stream has
 * already grown further (deltas that arrived while the list was on its way). What is the same as
 * before keeps its object: a part equal to the one shown, a message whose info and parts all are,
 * and the whole list when every message is.
 * `below`: current's messages before the page, kept.
 */
function mergeLoaded(current: MessageEntry[], loaded: LoadedMessage[], below: MessageEntry[] = []): MessageEntry[] {
  const byId = new Map(current.map((entry) => [entry.id, entry]));
  const merged: MessageEntry[] = [...below];
  for (const { info, parts } of loaded) merged.push(mergeOne(byId.get(info.id), info, parts));
  // Messages the stream created after the list was taken stay.
  const loadedIds = new Set(loaded.map(({ info }) => info.id));
  const newest = loaded.length ? loaded[loaded.length - 1].info.id : below.length ? below[below.length - 1].id : "";
  for (const entry of current) {
    if (!loadedIds.has(entry.id) && entry.id > newest) merged.push(entry);
  }
  merged.sort(byIdOrder);
  const unchanged = merged.length === current.length && merged.every((entry, i) => entry === current[i]);
  return unchanged ? current : merged;
}

/** A loaded message, keeping what the stream already showed of it where it is the same (or, for a
 * text, longer: the stream ran ahead of the answer). */
function mergeOne(streamed: MessageEntry | undefined, info: Message, parts: Part[]): MessageEntry {
  const sorted = parts.slice().sort(byIdOrder);
  if (!streamed) return { id: info.id, info, parts: sorted };
  const streamedParts = new Map(streamed.parts.map((part) => [part.id, part]));
  const mergedParts = sorted.map((part) => {
    const other = streamedParts.get(part.id);
    if (!other) return part;
    if (other.type === "text" && part.type === "text" && other.text.length > part.text.length) return other;
    return sameValue(other, part) ? other : part;
  });
  const sameParts = mergedParts.length === streamed.parts.length && mergedParts.every((part, i) => part === streamed.parts[i]);
  const sameInfo = streamed.info !== undefined && sameValue(streamed.info, info);
  if (sameParts && sameInfo) return streamed;
  return { id: info.id, info: sameInfo ? streamed.info! : info, parts: sameParts ? streamed.parts : mergedParts };
}

const byIdOrder = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Deep equality of JSON values (what the API sends): same primitives, same keys, same items. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let keys = 0;
  for (const key in x) {
    if (x[key] === undefined) continue;
    keys++;
    if (!sameValue(x[key], y[key])) return false;
  }
  for (const key in y) if (y[key] !== undefined) keys--;
  return keys === 0;
}

// ---- Selectors ----

/** Top-level conversations (subagent sessions have a parent), most recently updated first. */
export function sortedSessions(state: ChatState): Session[] {
  return Object.values(state.sessions)
    .filter((session) => !session.parentID)
    .sort((a, b) => b.time.updated - a.time.updated);
}

export function conversationOf(state: ChatState, sessionID: string | undefined): Conversation {
  return (sessionID && state.conversations[sessionID]) || EMPTY;
}
const EMPTY: Conversation = emptyConversation();

export function isBusy(conversation: Conversation): boolean {
  return conversation.status.type !== "idle";
}

/** The session's pending permission requests, oldest first. */
export function permissionsOf(state: ChatState, sessionID: string | undefined): PermissionRequest[] {
  if (!sessionID) return [];
  return Object.values(state.permissions)
    .filter((request) => request.sessionID === sessionID)
    .sort((a, b) => (a.id < b.id ? -1 : 1));
}

/** The session's pending questions, oldest first. */
export function questionsOf(state: ChatState, sessionID: string | undefined): QuestionRequest[] {
  if (!sessionID) return [];
  return Object.values(state.questions)
    .filter((request) => request.sessionID === sessionID)
    .sort((a, b) => (a.id < b.id ? -1 : 1));
}

/** opencode's placeholder title ("New session - <ISO time>") shown as a local time. */
export function conversationTitle(session: { title: string; time: { created: number } }): string {
  if (session.title && !/^New session - \d{4}-/.test(session.title)) return session.title;
  return `New conversation · ${new Date(session.time.created).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" })}`;
}

/** A readable sentence for an error opencode reported (`session.error`, a message's `error`). */
export function describeError(error: SessionError): string {
  const data = (error.data ?? {}) as { message?: unknown; statusCode?: unknown; providerID?: unknown };
  const message = typeof data.message === "string" && data.message ? data.message : "";
  switch (error.name) {
    case "MessageAbortedError":
      return "Stopped.";
    case "ProviderAuthError":
      return `The model provider${typeof data.providerID === "string" ? ` ${data.providerID}` : ""} refused the credentials${message ? `: ${message}` : "."}`;
    case "APIError":
      // 402: out of budget or credit (Octo's model gateway: "monthly token budget of … reached;
      // resets on …"), which says all there is to say.
      if (data.statusCode === 402 && message) return message;
      return `The model's API failed${typeof data.statusCode === "number" ? ` (HTTP ${data.statusCode})` : ""}${message ? `: ${message}` : "."}`;
    case "MessageOutputLengthError":
      return "The reply was cut off: it reached the model's output limit.";
    default:
      return message ? `${error.name}: ${message}` : error.name;
  }
}

export function isAbort(error: SessionError | undefined): boolean {
  return error?.name === "MessageAbortedError";
}
