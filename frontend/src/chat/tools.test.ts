import { describe, expect, it } from "vitest";
import type { Event, ToolPart } from "@opencode-ai/sdk/v2/client";
import { clipOutput, foldContext, formatCount, lineDiff, parseUnifiedDiff, toolView } from "./tools";
import bashReply from "./fixtures/bash-reply.json";
import writeNew from "./fixtures/write-new.json";
import writeExisting from "./fixtures/write-existing.json";
import abortAtPermission from "./fixtures/abort-at-permission.json";
import question from "./fixtures/question.json";

/** The tool part of a captured stream, in the state it reached last. */
function lastTool(fixture: { events: unknown[] }): ToolPart {
  const parts = (fixture.events as Event[])
    .filter((event) => event.type === "message.part.updated")
    .map((event) => (event.type === "message.part.updated" ? event.properties.part : undefined))
    .filter((part): part is ToolPart => part?.type === "tool");
  return parts.at(-1)!;
}

describe("toolView", () => {
  it("shows bash as its command and output", () => {
    const view = toolView(lastTool(bashReply));
    expect(view).toEqual({
      kind: "bash",
      command: "echo 'written by the agent through its shell tool' > /home/dev/agent-loop.txt",
      description: "Write the file",
      output: "(no output)",
      exit: 0,
    });
  });

  it("shows an aborted bash call's error as its output", () => {
    const view = toolView(lastTool(abortAtPermission));
    expect(view.kind === "bash" && view.output).toBe("Tool execution aborted");
  });

  it("shows a write as a diff of added lines, saying whether it created or overwrote", () => {
    const created = toolView(lastTool(writeNew));
    expect(created.kind).toBe("diff");
    if (created.kind !== "diff") return;
    expect(created.file).toBe("/home/dev/notes.md");
    expect(created.verb).toBe("Create");
    expect(created.added).toBe(4);
    expect(created.removed).toBe(0);
    expect(created.lines[0]).toEqual({ kind: "add", text: "# Notes" });
    const overwritten = toolView(lastTool(writeExisting));
    expect(overwritten.kind === "diff" && overwritten.verb).toBe("Overwrite");
  });

  it("shows an edit from its unified diff, or from old and new strings", () => {
    const base = {
      id: "prt_1",
      sessionID: "ses_1",
      messageID: "msg_1",
      type: "tool",
      callID: "call_1",
      tool: "edit",
    } as const;
    const withDiff = {
      ...base,
      state: {
        status: "completed",
        input: { filePath: "/home/dev/a.ts", oldString: "x", newString: "y" },
        output: "",
        title: "a.ts",
        metadata: {
          diff: "Index: /home/dev/a.ts\n===================================================================\n--- /home/dev/a.ts\n+++ /home/dev/a.ts\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n",
        },
        time: { start: 1, end: 2 },
      },
    } as ToolPart;
    const view = toolView(withDiff);
    expect(view.kind === "diff" && view.lines).toEqual([
      { kind: "hunk", text: "@@ -1,3 +1,3 @@" },
      { kind: "ctx", text: "one" },
      { kind: "del", text: "two" },
      { kind: "add", text: "TWO" },
      { kind: "ctx", text: "three" },
    ]);
    const running = {
      ...base,
      state: { status: "running", input: { filePath: "/a", oldString: "a\nb", newString: "a\nc" }, time: { start: 1 } },
    } as ToolPart;
    const fromStrings = toolView(running);
    expect(fromStrings.kind === "diff" && [fromStrings.added, fromStrings.removed]).toEqual([1, 1]);
  });

  it("shows a question call as its questions and the answer", () => {
    const view = toolView(lastTool(question));
    expect(view.kind === "generic" && view.title).toBe("Which name should the note get?");
    expect(view.kind === "generic" && view.output).toContain('="notes.md"');
  });

  it("shows other tools by name, input and output", () => {
    const part = {
      id: "prt_1",
      sessionID: "ses_1",
      messageID: "msg_1",
      type: "tool",
      callID: "call_1",
      tool: "webfetch",
      state: {
        status: "completed",
        input: { url: "https://example.org" },
        output: "<html>",
        title: "example.org",
        metadata: {},
        time: { start: 1, end: 2 },
      },
    } as ToolPart;
    expect(toolView(part)).toEqual({
      kind: "generic",
      title: "example.org",
      input: '{\n  "url": "https://example.org"\n}',
      output: "<html>",
    });
    const pending = { ...part, state: { status: "pending", input: {}, raw: "" } } as ToolPart;
    expect(toolView(pending)).toEqual({ kind: "generic", title: "webfetch", input: "", output: "" });
  });
});

describe("lineDiff", () => {
  it("aligns unchanged lines and marks removals and additions", () => {
    expect(lineDiff("a\nb\nc\nd\n", "a\nc\nd\ne\n")).toEqual([
      { kind: "ctx", text: "a" },
      { kind: "del", text: "b" },
      { kind: "ctx", text: "c" },
      { kind: "ctx", text: "d" },
      { kind: "add", text: "e" },
    ]);
    expect(lineDiff("", "x\ny")).toEqual([
      { kind: "add", text: "x" },
      { kind: "add", text: "y" },
    ]);
    expect(lineDiff("same", "same")).toEqual([{ kind: "ctx", text: "same" }]);
  });

  it("is a minimal diff: as many context lines as the longest common subsequence", () => {
    const before = "1\n2\n3\n4\n5\n6\n7\n8".split("\n");
    const after = "0\n2\n3\n9\n5\n6\n8\n10".split("\n");
    const lines = lineDiff(before.join("\n"), after.join("\n"));
    expect(lines.filter((l) => l.kind === "ctx").map((l) => l.text)).toEqual(["2", "3", "5", "6", "8"]);
    // Reading only the old side (context + removals) gives the old text, and likewise the new.
    expect(lines.filter((l) => l.kind !== "add").map((l) => l.text)).toEqual(before);
    expect(lines.filter((l) => l.kind !== "del").map((l) => l.text)).toEqual(after);
  });

  it("gives up aligning huge inputs but stays correct", () => {
    const before = Array.from({ length: 3000 }, (_, i) => `old ${i}`).join("\n");
    const after = Array.from({ length: 3000 }, (_, i) => `new ${i}`).join("\n");
    const lines = lineDiff(before, after);
    expect(lines.filter((l) => l.kind === "del")).toHaveLength(3000);
    expect(lines.filter((l) => l.kind === "add")).toHaveLength(3000);
  });
});

describe("parseUnifiedDiff and foldContext", () => {
  it("reads opencode's patch format too", () => {
    const lines = parseUnifiedDiff("*** Begin Patch\n*** Update File: a.txt\n@@\n-x\n+y\n*** End Patch");
    expect(lines).toEqual([
      { kind: "hunk", text: "*** Update File: a.txt" },
      { kind: "hunk", text: "@@" },
      { kind: "del", text: "x" },
      { kind: "add", text: "y" },
    ]);
  });

  it("folds long unchanged runs away from the changes", () => {
    const before = Array.from({ length: 20 }, (_, i) => `${i}`).join("\n");
    const after = before.replace("10", "ten");
    const folded = foldContext(lineDiff(before, after), 2);
    expect(folded[0]).toEqual({ kind: "fold", count: 8 }); // lines 0-7
    expect(folded.filter((l) => l.kind !== "fold")).toHaveLength(6);
    expect(folded.at(-1)).toEqual({ kind: "fold", count: 7 }); // lines 13-19
  });
});

describe("clipOutput", () => {
  const text = (n: number) => Array.from({ length: n }, (_, i) => `l${i}`).join("\n") + "\n";
  it("keeps short output whole", () => expect(clipOutput(text(3), 5)).toEqual({ shown: "l0\nl1\nl2", hidden: 0, lines: 3, bytes: 9 }));
  it("keeps exactly `keep` lines whole", () => expect(clipOutput(text(5), 5).hidden).toBe(0));
  it("keeps the last lines of long output, counting the rest", () => {
    const c = clipOutput(text(10_000), 200);
    expect(c.hidden).toBe(9800);
    expect(c.lines).toBe(10_000);
    expect(c.shown.split("\n")).toEqual(Array.from({ length: 200 }, (_, i) => `l${9800 + i}`));
  });
  it("sizes in UTF-8 bytes", () => expect(clipOutput("é\n").bytes).toBe(3));
  it("has no lines when empty", () => expect(clipOutput("")).toEqual({ shown: "", hidden: 0, lines: 0, bytes: 0 }));
});

describe("formatCount", () => {
  it("groups thousands as English does, without Intl", () => {
    for (const n of [0, 7, 999, 1000, 9800, 10_000, 123_456, 1_234_567, 1_000_000_000]) {
      expect(formatCount(n)).toBe(n.toLocaleString("en"));
    }
  });
});
