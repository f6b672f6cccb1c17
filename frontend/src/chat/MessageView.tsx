// One message of a conversation: the user's prompt, or the agent's reply with its text (Markdown),
// reasoning, tool calls (bash: command + output; file writes and edits: a diff; others: name, input,
// output) and the permission requests that wait on them.
import { memo, useMemo, useState } from "react";
import type { Part, PermissionRequest, QuestionRequest, ToolPart } from "@opencode-ai/sdk/v2/client";
import type { MessageEntry } from "./state";
import { describeError, isAbort } from "./state";
import { Markdown } from "./Markdown";
import { clipOutput, foldContext, formatCount, toolView, OUTPUT_LINES, type DiffLine } from "./tools";

export type PermissionReply = "once" | "always" | "reject";

export interface PermissionHandlers {
  /** Pending requests by the tool call they are about (`callKey`). */
  byCall: Map<string, PermissionRequest>;
  onReply: (request: PermissionRequest, reply: PermissionReply) => Promise<void>;
  /** Pending questions by the tool call that asks them. */
  questionsByCall: Map<string, QuestionRequest>;
  onAnswer: (request: QuestionRequest, answers: string[][] | undefined) => Promise<void>;
}

/** Identifies a tool call: call ids are the model's and only unique within a message. */
export const callKey = (messageID: string, callID: string) => `${messageID} ${callID}`;

export const MessageView = memo(function MessageView(props: {
  entry: MessageEntry;
  permissions: PermissionHandlers;
}): JSX.Element {
  const { entry, permissions } = props;
  const role = entry.info?.role ?? "assistant";
  const error = entry.info?.role === "assistant" ? entry.info.error : undefined;
  const visible = entry.parts.filter((part) => shown(part, role));
  return (
    <article className={`chat-msg chat-msg-${role}`} data-testid="chat-message" data-role={role} data-message-id={entry.id}>
      {role === "user" ? (
        <div className="chat-user-text">
          {visible.map((part) => (
            <UserPart key={part.id} part={part} />
          ))}
        </div>
      ) : (
        visible.map((part) => <AssistantPart key={part.id} part={part} permissions={permissions} />)
      )}
      {error &&
        (isAbort(error) ? (
          <p className="chat-note">Stopped.</p>
        ) : (
          <p className="chat-msg-error" role="alert">
            {describeError(error)}
          </p>
        ))}
    </article>
  );
});

function shown(part: Part, role: string): boolean {
  switch (part.type) {
    case "text":
      return !part.ignored && (role !== "user" || !part.synthetic) && part.text !== "";
    case "reasoning":
      return part.text.trim() !== "";
    case "tool":
    case "file":
    case "retry":
    case "subtask":
      return true;
    default:
      return false;
  }
}

function UserPart(props: { part: Part }): JSX.Element | null {
  const { part } = props;
  if (part.type === "text") return <p>{part.text}</p>;
  if (part.type === "file") return <span className="chat-chip">📎 {part.filename ?? part.url}</span>;
  return null;
}

function AssistantPart(props: { part: Part; permissions: PermissionHandlers }): JSX.Element | null {
  const { part, permissions } = props;
  switch (part.type) {
    case "text":
      return <Markdown text={part.text} />;
    case "reasoning":
      return (
        <details className="chat-reasoning">
          <summary>Reasoning</summary>
          <div className="chat-reasoning-text">{part.text}</div>
        </details>
      );
    case "tool":
      return (
        <ToolCard
          part={part}
          permission={permissions.byCall.get(callKey(part.messageID, part.callID))}
          question={permissions.questionsByCall.get(callKey(part.messageID, part.callID))}
          handlers={permissions}
        />
      );
    case "file":
      return <span className="chat-chip">📎 {part.filename ?? part.url}</span>;
    case "retry":
      return (
        <p className="chat-note chat-warn">
          Retrying (attempt {part.attempt}): {part.error.data.message}
        </p>
      );
    case "subtask":
      return (
        <p className="chat-note">
          Subtask for {part.agent}: {part.description}
        </p>
      );
    default:
      return null;
  }
}

const STATUS_LABEL: Record<string, string> = {
  pending: "Preparing",
  running: "Running",
  completed: "Done",
  error: "Failed",
};

function ToolCard(props: {
  part: ToolPart;
  permission?: PermissionRequest;
  question?: QuestionRequest;
  handlers: PermissionHandlers;
}): JSX.Element {
  const { part, permission, question, handlers } = props;
  const asking = !!permission || !!question;
  const status = part.state.status;
  // A part keeps its identity until it changes (state.ts): a write's line diff is not redone for
  // every streamed delta of its message.
  const view = useMemo(() => toolView(part), [part]);
  // Open while it runs, fails or asks; the user's own toggle wins afterwards.
  const [toggled, setToggled] = useState<boolean | undefined>();
  const open = toggled ?? (status === "running" || status === "error" || asking || view.kind === "diff");
  const summary =
    view.kind === "bash" ? view.description || view.command : view.kind === "diff" ? `${view.verb} ${view.file}` : view.title;
  return (
    <div className="chat-tool-wrap">
    <details
      className={`chat-tool chat-tool-${status}${asking ? " chat-tool-asking" : ""}`}
      data-testid="chat-tool"
      data-tool={part.tool}
      data-status={status}
      open={open}
      onToggle={(event) => {
        const now = (event.currentTarget as HTMLDetailsElement).open;
        if (now !== open) setToggled(now);
      }}
    >
      <summary>
        <span className={`chat-tool-dot chat-tool-dot-${status}`} aria-hidden="true" />
        <span className="chat-tool-name">{part.tool}</span>
        <span className="chat-tool-summary">{summary}</span>
        {view.kind === "diff" && (
          <span className="chat-tool-counts">
            <span className="diff-add-count">+{view.added}</span> <span className="diff-del-count">−{view.removed}</span>
          </span>
        )}
        <span className="chat-tool-status">{asking ? "Waiting for you" : STATUS_LABEL[status]}</span>
      </summary>
      {/* Rendered only while open: a closed card of 10,000 output lines costs nothing. */}
      {open && (
      <div className="chat-tool-body">
        {view.kind === "bash" && (
          <pre className="chat-terminal">
            <span className="chat-prompt">$ </span>
            {view.command}
            {view.output && <Output text={view.output} lead={"\n"} />}
            {view.exit !== undefined && view.exit !== 0 && <span className="chat-exit">{`\nexit ${view.exit}`}</span>}
          </pre>
        )}
        {view.kind === "diff" && <DiffView lines={view.lines} />}
        {view.kind === "generic" && (
          <>
            {view.input && <pre className="chat-tool-io">{view.input}</pre>}
            {view.output && (
              <pre className="chat-tool-io chat-tool-output">
                <Output text={view.output} lead="" />
              </pre>
            )}
          </>
        )}
        {status === "error" && view.kind !== "bash" && part.state.status === "error" && (
          <p className="chat-msg-error">{part.state.error}</p>
        )}
      </div>
      )}
    </details>
    {permission && <PermissionPrompt request={permission} onReply={handlers.onReply} />}
    {question && <QuestionPrompt request={question} onAnswer={handlers.onAnswer} />}
    </div>
  );
}

/** A tool's output, collapsed to its last OUTPUT_LINES lines with its size shown until asked. */
function Output(props: { text: string; lead: string }): JSX.Element {
  const [all, setAll] = useState(false);
  const clip = clipOutput(props.text);
  if (all || clip.hidden === 0) return <>{`${props.lead}${props.text.replace(/\n$/, "")}`}</>;
  return (
    <>
      {props.lead}
      <button type="button" className="btn small ghost chat-output-more" data-testid="chat-output-more" onClick={() => setAll(true)}>
        ⋯ {formatCount(clip.hidden)} earlier lines; show all {formatCount(clip.lines)} ({formatBytes(clip.bytes)})
      </button>
      {`\n${clip.shown}`}
    </>
  );
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Diffs longer than this many rows show their first rows until asked. */
const DIFF_ROWS = OUTPUT_LINES * 2;

function DiffView(props: { lines: DiffLine[] }): JSX.Element {
  const [all, setAll] = useState(false);
  const folded = useMemo(() => foldContext(props.lines), [props.lines]);
  const rows = all ? folded : folded.slice(0, DIFF_ROWS);
  return (
    <div className="chat-diff" role="table" aria-label="Changes">
      {!all && folded.length > DIFF_ROWS && (
        <button type="button" className="btn small ghost chat-output-more" data-testid="chat-output-more" onClick={() => setAll(true)}>
          Showing {DIFF_ROWS} of {formatCount(folded.length)} rows; show all
        </button>
      )}
      {rows.map((row, index) =>
        row.kind === "fold" ? (
          <div key={index} className="diff-line diff-fold" role="row">
            ⋯ {row.count} unchanged line{row.count === 1 ? "" : "s"}
          </div>
        ) : (
          <div key={index} className={`diff-line diff-${row.kind}`} role="row">
            <span className="diff-sign" aria-hidden="true">
              {row.kind === "add" ? "+" : row.kind === "del" ? "−" : row.kind === "hunk" ? "" : " "}
            </span>
            <span className="diff-text">{row.text || " "}</span>
          </div>
        ),
      )}
    </div>
  );
}

export function PermissionPrompt(props: {
  request: PermissionRequest;
  onReply: PermissionHandlers["onReply"];
}): JSX.Element {
  const { request, onReply } = props;
  const [busy, setBusy] = useState(false);
  const reply = async (answer: PermissionReply) => {
    setBusy(true);
    try {
      await onReply(request, answer);
    } finally {
      setBusy(false);
    }
  };
  const what = request.patterns.length ? request.patterns.join(", ") : request.permission;
  return (
    <div className="chat-permission" role="group" aria-label={`Permission for ${request.permission}`} data-testid="permission-prompt">
      <p>
        The agent asks to use <strong>{request.permission}</strong>: <code>{what}</code>
      </p>
      <div className="chat-permission-actions">
        <button type="button" className="btn primary small" data-testid="permission-approve" disabled={busy} onClick={() => reply("once")}>
          Allow once
        </button>
        {request.always.length > 0 && (
          <button
            type="button"
            className="btn small"
            data-testid="permission-always"
            disabled={busy}
            title={`Always allow: ${request.always.join(", ")}`}
            onClick={() => reply("always")}
          >
            Always allow <code>{request.always.join(", ")}</code>
          </button>
        )}
        <button type="button" className="btn danger small" data-testid="permission-deny" disabled={busy} onClick={() => reply("reject")}>
          Deny
        </button>
      </div>
    </div>
  );
}

/** The agent's questions (its `question` tool): pick options or type an answer, or dismiss. */
export function QuestionPrompt(props: {
  request: QuestionRequest;
  onAnswer: PermissionHandlers["onAnswer"];
}): JSX.Element {
  const { request, onAnswer } = props;
  const [picked, setPicked] = useState<string[][]>(() => request.questions.map(() => []));
  const [typed, setTyped] = useState<string[]>(() => request.questions.map(() => ""));
  const [busy, setBusy] = useState(false);
  const answers = request.questions.map((_, index) => {
    const own = typed[index].trim();
    return own ? [...picked[index], own] : picked[index];
  });
  const complete = answers.every((answer) => answer.length > 0);
  const submit = async (value: string[][] | undefined) => {
    setBusy(true);
    try {
      await onAnswer(request, value);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="chat-permission chat-question"
      data-testid="question-prompt"
      onSubmit={(event) => {
        event.preventDefault();
        if (complete) void submit(answers);
      }}
    >
      {request.questions.map((question, index) => (
        <fieldset key={index} className="chat-question-set">
          <legend>
            {question.header && <span className="chat-question-header">{question.header}</span>} {question.question}
          </legend>
          {question.options.map((option) => {
            const checked = picked[index].includes(option.label);
            return (
              <label key={option.label} className="chat-question-option">
                <input
                  type={question.multiple ? "checkbox" : "radio"}
                  name={`${request.id}-${index}`}
                  data-testid="question-option"
                  value={option.label}
                  checked={checked}
                  onChange={() =>
                    setPicked((all) =>
                      all.map((list, i) =>
                        i !== index
                          ? list
                          : question.multiple
                            ? checked
                              ? list.filter((label) => label !== option.label)
                              : [...list, option.label]
                            : [option.label],
                      ),
                    )
                  }
                />
                <span>
                  <strong>{option.label}</strong>
                  {option.description && <span className="muted"> — {option.description}</span>}
                </span>
              </label>
            );
          })}
          {question.custom !== false && (
            <input
              type="text"
              className="chat-question-custom"
              data-testid="question-custom"
              placeholder="Or type your own answer"
              aria-label={`Your own answer to: ${question.question}`}
              value={typed[index]}
              onChange={(event) => {
                const value = event.target.value;
                setTyped((all) => all.map((text, i) => (i === index ? value : text)));
                if (!question.multiple && value) setPicked((all) => all.map((list, i) => (i === index ? [] : list)));
              }}
            />
          )}
        </fieldset>
      ))}
      <div className="chat-permission-actions">
        <button type="submit" className="btn primary small" data-testid="question-submit" disabled={busy || !complete}>
          Answer
        </button>
        <button type="button" className="btn small" data-testid="question-dismiss" disabled={busy} onClick={() => void submit(undefined)}>
          Dismiss
        </button>
      </div>
    </form>
  );
}
