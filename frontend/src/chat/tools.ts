// How a tool call is shown: pure functions from opencode's tool part to what the view needs — the
// shell command and its output for `bash`, a line diff for file edits and writes, name/input/output
// for anything else.
import type { ToolPart } from "@opencode-ai/sdk/v2/client";

export type DiffLine = { kind: "add" | "del" | "ctx" | "hunk"; text: string };

export type ToolView =
  | { kind: "bash"; command: string; description?: string; output: string; exit?: number }
  | { kind: "diff"; file: string; verb: string; lines: DiffLine[]; added: number; removed: number }
  | { kind: "generic"; title: string; input: string; output: string };

const str = (value: unknown): string => (typeof value === "string" ? value : "");

/** The output so far: final when completed, streamed in `metadata.output` while running. */
export function toolOutput(part: ToolPart): string {
  const state = part.state;
  if (state.status === "completed") return state.output;
  if (state.status === "error") return state.error;
  if (state.status === "running") return str(state.metadata?.output);
  return "";
}

export function toolView(part: ToolPart): ToolView {
  const state = part.state;
  const input = (state.input ?? {}) as Record<string, unknown>;
  const metadata = ("metadata" in state ? state.metadata : undefined) ?? {};
  switch (part.tool) {
    case "bash": {
      const exit = typeof metadata.exit === "number" ? metadata.exit : undefined;
      return {
        kind: "bash",
        command: str(input.command),
        description: str(input.description) || undefined,
        output: toolOutput(part),
        exit,
      };
    }
    case "edit": {
      const file = str(input.filePath);
      const diff = str(metadata.diff);
      const lines = diff ? parseUnifiedDiff(diff) : lineDiff(str(input.oldString), str(input.newString));
      return withCounts({ kind: "diff", file, verb: "Edit", lines });
    }
    case "write": {
      const file = str(input.filePath) || str(metadata.filepath);
      const lines = lineDiff("", str(input.content));
      const verb = metadata.exists === true ? "Overwrite" : metadata.exists === false ? "Create" : "Write";
      return withCounts({ kind: "diff", file, verb, lines });
    }
    case "question": {
      const questions = Array.isArray(input.questions) ? (input.questions as { question?: unknown }[]) : [];
      return {
        kind: "generic",
        title: questions.map((q) => str(q.question)).join(" · ") || "question",
        input: "",
        output: toolOutput(part),
      };
    }
    case "apply_patch":
    case "patch": {
      const text = str(input.patchText) || str(input.patch);
      if (text) {
        return withCounts({ kind: "diff", file: patchFiles(text), verb: "Patch", lines: parseUnifiedDiff(text) });
      }
      break;
    }
  }
  const title = state.status === "completed" ? state.title : state.status === "running" ? str(state.title) : "";
  return {
    kind: "generic",
    title: title || part.tool,
    input: Object.keys(input).length ? JSON.stringify(input, null, 2) : "",
    output: toolOutput(part),
  };
}

function withCounts(view: { kind: "diff"; file: string; verb: string; lines: DiffLine[] }): ToolView {
  return {
    ...view,
    added: view.lines.filter((line) => line.kind === "add").length,
    removed: view.lines.filter((line) => line.kind === "del").length,
  };
}

function patchFiles(text: string): string {
  const files = text
    .split("\n")
    .map((line) => /^\*\*\* (?:Add|Update|Delete) File: (.+)$/.exec(line)?.[1] ?? /^\+\+\+ (?:b\/)?(.+)$/.exec(line)?.[1])
    .filter((file): file is string => !!file && file !== "/dev/null");
  return [...new Set(files)].join(", ");
}

/** Lines of a unified diff (or an opencode `*** Begin Patch` text) classified for display. */
export function parseUnifiedDiff(text: string): DiffLine[] {
  const lines: DiffLine[] = [];
  for (const line of text.replace(/\n$/, "").split("\n")) {
    if (/^(Index: |={10,}|--- |\+\+\+ |diff --git |\*\*\* (Begin|End) Patch)/.test(line)) continue;
    if (line.startsWith("@@") || line.startsWith("*** ")) lines.push({ kind: "hunk", text: line });
    else if (line.startsWith("+")) lines.push({ kind: "add", text: line.slice(1) });
    else if (line.startsWith("-")) lines.push({ kind: "del", text: line.slice(1) });
    else if (line.startsWith("\\")) continue; // "\ No newline at end of file"
    else lines.push({ kind: "ctx", text: line.startsWith(" ") ? line.slice(1) : line });
  }
  return lines;
}

/** Beyond this many line pairs the diff gives up on alignment: all old lines out, all new in. */
const MAX_CELLS = 4_000_000;

/** A line diff of two texts (longest common subsequence), in order: context, removals, additions. */
export function lineDiff(before: string, after: string): DiffLine[] {
  const a = splitLines(before);
  const b = splitLines(after);
  // Common head and tail are context without any work.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head += 1;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) {
    tail += 1;
  }
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  const out: DiffLine[] = a.slice(0, head).map((text) => ({ kind: "ctx", text }));
  if (midA.length * midB.length > MAX_CELLS) {
    out.push(...midA.map((text) => ({ kind: "del" as const, text })));
    out.push(...midB.map((text) => ({ kind: "add" as const, text })));
  } else {
    out.push(...lcsDiff(midA, midB));
  }
  out.push(...a.slice(a.length - tail).map((text) => ({ kind: "ctx" as const, text })));
  return out;
}

function splitLines(text: string): string[] {
  if (text === "") return [];
  return text.replace(/\n$/, "").split("\n");
}

function lcsDiff(a: string[], b: string[]): DiffLine[] {
  const n = a.length;
  const m = b.length;
  // lengths[i][j]: LCS length of a[i..] and b[j..], in one flat array.
  const width = m + 1;
  const lengths = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      lengths[i * width + j] =
        a[i] === b[j]
          ? lengths[(i + 1) * width + j + 1] + 1
          : Math.max(lengths[(i + 1) * width + j], lengths[i * width + j + 1]);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ kind: "ctx", text: a[i] });
      i += 1;
      j += 1;
    } else if (lengths[(i + 1) * width + j] >= lengths[i * width + j + 1]) {
      out.push({ kind: "del", text: a[i] });
      i += 1;
    } else {
      out.push({ kind: "add", text: b[j] });
      j += 1;
    }
  }
  while (i < n) out.push({ kind: "del", text: a[i++] });
  while (j < m) out.push({ kind: "add", text: b[j++] });
  return out;
}

/** Collapses long runs of unchanged lines to `context` lines around each change. */
export function foldContext(lines: DiffLine[], context = 3): (DiffLine | { kind: "fold"; count: number })[] {
  const near = new Array<boolean>(lines.length).fill(false);
  lines.forEach((line, index) => {
    if (line.kind === "ctx") return;
    for (let k = Math.max(0, index - context); k <= Math.min(lines.length - 1, index + context); k += 1) near[k] = true;
  });
  const out: (DiffLine | { kind: "fold"; count: number })[] = [];
  let folded = 0;
  lines.forEach((line, index) => {
    if (near[index]) {
      if (folded) out.push({ kind: "fold", count: folded });
      folded = 0;
      out.push(line);
    } else {
      folded += 1;
    }
  });
  if (folded) out.push({ kind: "fold", count: folded });
  return out;
}

/** Output longer than this many lines is collapsed to its last lines until asked for. */
/** `n` with its thousands grouped by commas (10,000), as `toLocaleString("en")` would write it:
 * without Intl, whose first use in a page loads ICU's data in one task of 30 to 80 ms, right in
 * the first render of a conversation with a long code block. */
export function formatCount(n: number): string {
  return String(Math.trunc(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export const OUTPUT_LINES = 200;

/** A tool's output as shown collapsed: its last `keep` lines (where a command's result and errors
 * are), with how many lines came before and the whole output's size in bytes (UTF-8). */
export function clipOutput(text: string, keep = OUTPUT_LINES): { shown: string; hidden: number; lines: number; bytes: number } {
  const body = text.replace(/\n$/, "");
  let cut = body.length;
  let kept = 0;
  while (kept < keep) {
    const nl = body.lastIndexOf("\n", cut - 1);
    if (nl < 0) {
      cut = -1;
      break;
    }
    cut = nl;
    kept++;
  }
  const lines = body === "" ? 0 : body.split("\n").length;
  if (cut < 0) return { shown: body, hidden: 0, lines, bytes: new TextEncoder().encode(text).length };
  return { shown: body.slice(cut + 1), hidden: lines - keep, lines, bytes: new TextEncoder().encode(text).length };
}
