// The chat pane: conversations with the session's agent (opencode sessions) through the official
// SDK and octod's proxy. Lists, creates and switches conversations, sends prompts, follows the event
// stream (streamed replies, tool calls, permission requests) with reconnect and resync, stops a
// running reply. State changes go through the event stream reducer (`state.ts`).
import { memo, useCallback, useEffect, useMemo, useReducer, useRef, useState } from "react";
import type { PermissionRequest, QuestionRequest } from "@opencode-ai/sdk/v2/client";
import { api, ApiError } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { call, messagePage, opencodeClient, subscribeEvents } from "./client";
import { loadRenderer } from "./Markdown";
import { MessageList } from "./MessageList";
import { PermissionPrompt, QuestionPrompt, callKey, type PermissionHandlers, type PermissionReply } from "./MessageView";
import {
  chatReducer,
  conversationOf,
  conversationTitle,
  describeError,
  initialChatState,
  isAbort,
  isBusy,
  permissionsOf,
  questionsOf,
  sortedSessions,
} from "./state";
import { runEventStream } from "./stream";
import { offersChoice, promptModel, storeChoice, storedChoice } from "./models";
import type { ModelList } from "../api";
import "./chat.css";

const selectedKey = (sessionId: string) => `octo.chat.${sessionId}.conversation`;

function remembered(sessionId: string): string | undefined {
  try {
    return window.localStorage.getItem(selectedKey(sessionId)) ?? undefined;
  } catch {
    return undefined;
  }
}

function remember(sessionId: string, conversation: string | undefined) {
  try {
    if (conversation) window.localStorage.setItem(selectedKey(sessionId), conversation);
    else window.localStorage.removeItem(selectedKey(sessionId));
  } catch {
    // storage unavailable: the choice lasts for this page only
  }
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

export function ChatPane(props: { sessionId: string }): JSX.Element {
  const { sessionId } = props;
  // The pane's lifetime: requests of its client still running when it closes are cancelled.
  // Made in an effect (not with the client), so that React's development double mount does
  // not leave the client with an aborted signal.
  const lifetime = useRef<AbortController | undefined>(undefined);
  useEffect(() => {
    const controller = new AbortController();
    lifetime.current = controller;
    return () => controller.abort();
  }, [sessionId]);
  const client = useMemo(() => opencodeClient(sessionId, () => lifetime.current?.signal), [sessionId]);
  const [state, dispatch] = useReducer(chatReducer, initialChatState);
  const [selected, setSelected] = useState<string | undefined>(() => remembered(sessionId));
  const [listed, setListed] = useState(false);
  const [error, setError] = useState<string>();
  // Loading failures are replaced by the next load's outcome; other errors wait to be dismissed.
  const [loadError, setLoadError] = useState<string>();
  const [streamError, setStreamError] = useState<string>();
  const selectedRef = useRef(selected);
  selectedRef.current = selected;

  const select = useCallback(
    (id: string | undefined) => {
      setSelected(id);
      remember(sessionId, id);
    },
    [sessionId],
  );

  const loadOverview = useCallback(async () => {
    const [sessions, statuses, permissions, questions] = await Promise.all([
      call("Listing conversations", client.session.list({ roots: true })),
      call("Reading the agent's status", client.session.status()),
      call("Listing permission requests", client.permission.list()),
      call("Listing the agent's questions", client.question.list()),
    ]);
    dispatch({ type: "sessions-loaded", sessions });
    dispatch({ type: "statuses-loaded", statuses });
    dispatch({ type: "permissions-loaded", permissions });
    dispatch({ type: "questions-loaded", questions });
    setListed(true);
    return sessions;
  }, [client]);

  // Conversations whose messages have been loaded once (until then: "Loading…", not "empty").
  const [loadedOnce, setLoadedOnce] = useState<ReadonlySet<string>>(() => new Set());
  // The newest page of a conversation (on opening it, and after each reconnect).
  const loadMessages = useCallback(
    async (id: string) => {
      const { messages, older } = await messagePage(client, id);
      dispatch({ type: "messages-loaded", sessionID: id, messages, older });
      setLoadedOnce((ids) => (ids.has(id) ? ids : new Set(ids).add(id)));
    },
    [client],
  );
  // The page before the oldest message loaded, when the list comes near its top; one at a time.
  const olderRef = useRef<{ id?: string; cursor?: string }>({});
  const [loadingOlder, setLoadingOlder] = useState<string>();
  const loadingOlderRef = useRef<string>(undefined);
  // A page that failed is asked for again only from the button (not at every scroll).
  const failedOlder = useRef<string>(undefined);
  const loadOlder = useCallback((asked = false) => {
    const { id, cursor } = olderRef.current;
    if (!id || !cursor || loadingOlderRef.current || (!asked && failedOlder.current === cursor)) return;
    loadingOlderRef.current = cursor;
    setLoadingOlder(cursor);
    messagePage(client, id, cursor)
      .then(
        ({ messages, older }) => dispatch({ type: "messages-loaded", sessionID: id, messages, older, page: "older" }),
        (failure) => {
          failedOlder.current = cursor;
          setLoadError(message(failure));
        },
      )
      .finally(() => {
        loadingOlderRef.current = undefined;
        setLoadingOlder(undefined);
      });
  }, [client]);

  useEffect(() => {
    loadRenderer().catch(() => {});
  }, []);

  // The event stream, for the pane's lifetime. Each time it connects, load what it does not
  // replay: the conversations, statuses and requests, and the open conversation's messages.
  useEffect(() => {
    const controller = new AbortController();
    void runEventStream({
      subscribe: (signal) => subscribeEvents(client, signal),
      onEvent: (event) => dispatch({ type: "event", event }),
      onState: (connection, failure) => {
        dispatch({ type: "connection", state: connection });
        setStreamError(failure === undefined ? undefined : message(failure));
      },
      onConnected: () => {
        loadOverview().then(
          (sessions) => {
            if (controller.signal.aborted) return;
            setLoadError(undefined);
            const current = selectedRef.current;
            if (current && sessions.some((session) => session.id === current)) {
              loadMessages(current).catch((failure) => setLoadError(message(failure)));
            } else {
              // The remembered conversation is gone (or none was): open the newest.
              const newest = sessions.filter((s) => !s.parentID).sort((a, b) => b.time.updated - a.time.updated)[0];
              select(newest?.id);
            }
          },
          (failure) => !controller.signal.aborted && setLoadError(message(failure)),
        );
      },
      // Only while the session runs: a request through the proxy would wake a stopped one.
      mayReconnect: async () => {
        try {
          return (await api.session(sessionId)).state === "running";
        } catch (failure) {
          return !(failure instanceof ApiError && failure.status !== 0);
        }
      },
      signal: controller.signal,
    });
    return () => controller.abort();
  }, [client, loadOverview, loadMessages, select, sessionId]);

  useEffect(() => {
    if (!selected) return;
    loadMessages(selected).then(
      () => setLoadError(undefined),
      (failure) => setLoadError(message(failure)),
    );
  }, [selected, loadMessages]);

  // A conversation deleted elsewhere is no longer shown.
  useEffect(() => {
    if (listed && selected && !state.sessions[selected]) select(sortedSessions(state)[0]?.id);
  }, [listed, selected, state, select]);

  const conversation = conversationOf(state, selected);
  olderRef.current = { id: selected, cursor: conversation.older };
  const busy = isBusy(conversation);
  const pending = permissionsOf(state, selected);
  const asked = questionsOf(state, selected);
  const sessions = sortedSessions(state);

  const newConversation = useCallback(async () => {
    setError(undefined);
    try {
      const session = await call("Starting a conversation", client.session.create({}));
      dispatch({ type: "session-upserted", session });
      select(session.id);
      return session.id;
    } catch (failure) {
      setError(message(failure));
      return undefined;
    }
  }, [client, select]);

  // The models the user may choose (asked once), and this session's choice ("" = its own).
  const [models, setModels] = useState<ModelList>();
  const [model, setModel] = useState("");
  useEffect(() => {
    let live = true;
    api.models().then(
      (list) => {
        if (!live) return;
        setModels(list);
        setModel(storedChoice(sessionId, list));
      },
      () => {
        // No picker: prompts use the session's model, as before.
      },
    );
    return () => {
      live = false;
    };
  }, [sessionId]);
  const chooseModel = useCallback(
    (choice: string) => {
      setModel(choice);
      storeChoice(sessionId, choice);
    },
    [sessionId],
  );

  // The prompt on its way: shown at once, restored to the input if sending fails.
  const [outgoing, setOutgoing] = useState<string>();
  const [confirmDelete, setConfirmDelete] = useState(false);
  const deleteConversation = useCallback(async () => {
    setConfirmDelete(false);
    if (!selected) return;
    try {
      await call("Deleting the conversation", client.session.delete({ sessionID: selected }));
      // The list then opens the newest other one.
      dispatch({ type: "session-removed", sessionID: selected });
    } catch (failure) {
      setError(message(failure));
    }
  }, [client, selected]);

  /** Sends `text`; false when it was not sent (the composer gives it back). */
  const send = useCallback(
    async (text: string) => {
      if (outgoing !== undefined) return false;
      setOutgoing(text);
      setError(undefined);
      try {
        const id = selected ?? (await newConversation());
        if (!id) throw new Error("no conversation to send to");
        const chosen = promptModel(model, models);
        await call(
          "Sending the message",
          client.session.promptAsync({ sessionID: id, parts: [{ type: "text", text }], ...(chosen ? { model: chosen } : {}) }),
        );
        return true;
      } catch (failure) {
        setError(message(failure));
        return false;
      } finally {
        setOutgoing(undefined);
      }
    },
    [client, model, models, newConversation, outgoing, selected],
  );

  const abort = useCallback(async () => {
    if (!selected) return;
    try {
      await call("Stopping the reply", client.session.abort({ sessionID: selected }));
    } catch (failure) {
      setError(message(failure));
    }
  }, [client, selected]);

  const onReply = useCallback(
    async (request: PermissionRequest, reply: PermissionReply) => {
      try {
        await call("Answering the permission request", client.permission.reply({ requestID: request.id, reply }));
      } catch (failure) {
        setError(message(failure));
      }
    },
    [client],
  );

  const onAnswer = useCallback(
    async (request: QuestionRequest, answers: string[][] | undefined) => {
      try {
        if (answers) {
          await call("Answering the agent's question", client.question.reply({ requestID: request.id, answers }));
        } else {
          await call("Dismissing the agent's question", client.question.reject({ requestID: request.id }));
        }
      } catch (failure) {
        setError(message(failure));
      }
    },
    [client],
  );

  // Same requests, same object: messages re-render only when their own entry changes.
  const pendingKey = [...pending, ...asked].map((request) => request.id).join(" ");
  const pendingRef = useRef({ pending, asked });
  pendingRef.current = { pending, asked };
  const permissions: PermissionHandlers = useMemo(() => {
    const byCall = new Map<string, PermissionRequest>();
    for (const request of pendingRef.current.pending) {
      if (request.tool) byCall.set(callKey(request.tool.messageID, request.tool.callID), request);
    }
    const questionsByCall = new Map<string, QuestionRequest>();
    for (const request of pendingRef.current.asked) {
      if (request.tool) questionsByCall.set(callKey(request.tool.messageID, request.tool.callID), request);
    }
    return { byCall, onReply, questionsByCall, onAnswer };
  }, [pendingKey, onReply, onAnswer]);
  // Requests that belong to no tool call shown here (e.g. the tool part has not arrived yet).
  const shownCalls = useMemo(
    () =>
      new Set(
        conversation.messages.flatMap((entry) =>
          entry.parts.flatMap((part) => (part.type === "tool" ? [callKey(part.messageID, part.callID)] : [])),
        ),
      ),
    [conversation.messages],
  );
  const shown = (request: { tool?: { messageID: string; callID: string } }) =>
    !!request.tool && shownCalls.has(callKey(request.tool.messageID, request.tool.callID));
  const loose = pending.filter((request) => !shown(request));
  const looseQuestions = asked.filter((request) => !shown(request));
  // Messages with a request waiting on one of their tool calls stay rendered (the list is
  // windowed), so the prompt is there wherever the user has scrolled.
  const pinned = useMemo(
    () => new Set([...pendingRef.current.pending, ...pendingRef.current.asked].flatMap((request) => (request.tool ? [request.tool.messageID] : []))),
    [pendingKey],
  );

  const lastUserSays = (text: string) => {
    const user = [...conversation.messages].reverse().find((entry) => entry.info?.role === "user");
    return !!user && user.parts.some((part) => part.type === "text" && part.text.trim() === text);
  };

  const status = conversation.status;
  const last = conversation.messages[conversation.messages.length - 1];
  const waiting = (busy || outgoing !== undefined) && pending.length === 0 && asked.length === 0 && (!last || last.info?.role === "user" || last.parts.every((part) => part.type !== "text"));

  return (
    <div className="chat" data-testid="chat">
      <div className="chat-bar">
        <label className="chat-conversations">
          <span className="visually-hidden">Conversation</span>
          <select
            data-testid="chat-conversations"
            value={selected ?? ""}
            onChange={(event) => select(event.target.value || undefined)}
            disabled={sessions.length === 0}
          >
            {sessions.length === 0 && <option value="">No conversations yet</option>}
            {selected && !state.sessions[selected] && <option value={selected}>…</option>}
            {sessions.map((session) => (
              <option key={session.id} value={session.id}>
                {conversationTitle(session)}
                {isBusy(conversationOf(state, session.id)) ? " ●" : ""}
              </option>
            ))}
          </select>
        </label>
        <button type="button" className="btn small" data-testid="chat-new" onClick={() => void newConversation()} title="New conversation">
          + New
        </button>
        <button
          type="button"
          className="btn ghost small"
          data-testid="chat-delete"
          onClick={() => setConfirmDelete(true)}
          disabled={!selected || !state.sessions[selected]}
          title="Delete this conversation"
          aria-label="Delete this conversation"
        >
          <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true" fill="currentColor">
            <path d="M6 1.5h4a.5.5 0 0 1 .5.5V3h3a.5.5 0 0 1 0 1h-.56l-.8 9.6A1.5 1.5 0 0 1 10.65 15h-5.3a1.5 1.5 0 0 1-1.49-1.4L3.06 4H2.5a.5.5 0 0 1 0-1h3V2a.5.5 0 0 1 .5-.5ZM6.5 3h3v-.5h-3V3ZM4.07 4l.79 9.52a.5.5 0 0 0 .5.48h5.28a.5.5 0 0 0 .5-.48L11.93 4H4.07Z" />
          </svg>
        </button>
        <span
          className={`chat-conn chat-conn-${state.connection}`}
          data-testid="chat-connection"
          data-state={state.connection}
          title={streamError ? `Event stream: ${streamError}` : "Event stream"}
        >
          {state.connection === "open" ? "Live" : state.connection === "connecting" ? "Connecting…" : "Reconnecting…"}
        </span>
      </div>

      {confirmDelete && selected && state.sessions[selected] && (
        <ConfirmDialog
          title="Delete this conversation?"
          confirmLabel="Delete"
          danger
          onConfirm={() => void deleteConversation()}
          onCancel={() => setConfirmDelete(false)}
        >
          <p>
            “{conversationTitle(state.sessions[selected])}” and its messages are deleted. Files the agent changed stay as they
            are.
          </p>
        </ConfirmDialog>
      )}

      {(error || loadError) && (
        <div className="chat-error" role="alert" data-testid="chat-error">
          <span>{error ?? loadError}</span>
          <button
            type="button"
            className="btn ghost small"
            onClick={() => (error ? setError(undefined) : setLoadError(undefined))}
            aria-label="Dismiss the error"
          >
            ✕
          </button>
        </div>
      )}

      <MessageList
        entries={conversation.messages}
        permissions={permissions}
        pinned={pinned}
        conversation={selected}
        busy={busy}
        older={conversation.older === undefined ? undefined : { loading: loadingOlder !== undefined, load: loadOlder }}
      >
        {selected && !loadedOnce.has(selected) && conversation.messages.length === 0 && !loadError && (
          <p className="chat-note chat-loading" role="status">
            Loading the conversation…
          </p>
        )}
        {(!selected || loadedOnce.has(selected)) && conversation.messages.length === 0 && !busy && (
          <div className="chat-empty">
            <p>Ask the agent to do something in this workspace.</p>
            <p className="muted small-text">It can read and write files and run commands; replies stream in here.</p>
          </div>
        )}
        {outgoing !== undefined && !lastUserSays(outgoing) && (
          <article className="chat-msg chat-msg-user chat-msg-outgoing" aria-label="Sending">
            <div className="chat-user-text">
              <p>{outgoing}</p>
            </div>
          </article>
        )}
        {loose.map((request) => (
          <PermissionPrompt key={request.id} request={request} onReply={onReply} />
        ))}
        {looseQuestions.map((request) => (
          <QuestionPrompt key={request.id} request={request} onAnswer={onAnswer} />
        ))}
        {status.type === "retry" && (
          <p className="chat-note chat-warn" role="status">
            The model did not answer; retrying (attempt {status.attempt}): {status.message}
          </p>
        )}
        {waiting && status.type !== "retry" && (
          <p className="chat-note chat-working" role="status">
            Working…
          </p>
        )}
        {conversation.error && !isAbort(conversation.error) && (
          <div className="chat-error" role="alert" data-testid="chat-session-error">
            <span>{describeError(conversation.error)}</span>
            <button
              type="button"
              className="btn ghost small"
              onClick={() => selected && dispatch({ type: "dismiss-error", sessionID: selected })}
              aria-label="Dismiss the error"
            >
              ✕
            </button>
          </div>
        )}
      </MessageList>

      <div className="visually-hidden" role="status" aria-live="polite">
        {pending.length || asked.length ? "The agent is waiting for your answer." : busy ? "The agent is working." : ""}
      </div>

      <Composer
        sessionId={sessionId}
        busy={busy}
        sending={outgoing !== undefined}
        onSend={send}
        onAbort={abort}
        models={models}
        model={model}
        onModel={chooseModel}
      />
    </div>
  );
}

/** The message input: its own state, so that typing re-renders it alone, not the conversation. */
const Composer = memo(function Composer(props: {
  sessionId: string;
  busy: boolean;
  sending: boolean;
  onSend: (text: string) => Promise<boolean>;
  onAbort: () => Promise<void>;
  models: ModelList | undefined;
  model: string;
  onModel: (choice: string) => void;
}): JSX.Element {
  const { sessionId, busy, sending, onSend, onAbort, models, model, onModel } = props;
  const [draft, setDraft] = useState("");
  const send = async () => {
    const text = draft.trim();
    if (!text || sending) return;
    setDraft("");
    // Not sent: the text comes back, unless the user has started another.
    if (!(await onSend(text))) setDraft((current) => current || text);
  };
  return (
    <form
      className="chat-composer"
      onSubmit={(event) => {
        event.preventDefault();
        void send();
      }}
    >
      <label className="visually-hidden" htmlFor={`chat-input-${sessionId}`}>
        Message the agent
      </label>
      <textarea
        id={`chat-input-${sessionId}`}
        data-testid="chat-input"
        value={draft}
        rows={3}
        placeholder={busy ? "Esc stops the reply" : "Message the agent — Enter to send, Shift+Enter for a new line"}
        onChange={(event) => setDraft(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
            event.preventDefault();
            void send();
          } else if (event.key === "Escape" && busy) {
            event.preventDefault();
            void onAbort();
          }
        }}
      />
      <div className="chat-composer-actions">
        {offersChoice(models) && (
          <label className="chat-model" title="The model this conversation's next prompts use">
            <span className="visually-hidden">Model</span>
            <select data-testid="chat-model" value={model} onChange={(event) => onModel(event.target.value)}>
              <option value="">Session default{models?.default ? ` (${models.default})` : ""}</option>
              {models?.models.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.id}
                  {m.provider !== "default" ? ` · ${m.provider}` : ""}
                </option>
              ))}
            </select>
          </label>
        )}
        {busy && (
          <button type="button" className="btn small" data-testid="chat-abort" onClick={() => void onAbort()}>
            ■ Stop
          </button>
        )}
        <button type="submit" className="btn primary small" data-testid="chat-send" disabled={sending || !draft.trim()}>
          Send
        </button>
      </div>
    </form>
  );
});
