import { describe, expect, it } from "vitest";
import type { SnapshotJob } from "../api";
import { defaultSnapshotName, jobLine } from "./snapshots";

const job = (over: Partial<SnapshotJob>): SnapshotJob => ({
  kind: "create",
  state: "running",
  snapshot: "s12345678901",
  name: "before",
  done_bytes: 0,
  total_bytes: 0,
  started_at: 0,
  ...over,
});

describe("snapshots", () => {
  it("names a new snapshot after the local time", () => {
    expect(defaultSnapshotName(new Date(2026, 11, 3, 9, 5))).toBe("Snapshot 2026-12-03 09:05");
  });

  it("says how far a job is, and how it ended", () => {
    expect(jobLine(job({}))).toEqual({ text: "Taking “before”…", tone: "busy" });
    expect(jobLine(job({ done_bytes: 3 << 20, total_bytes: 4 << 20 })).text).toBe(
      "Taking “before”: 75% (3 MiB of 4 MiB)",
    );
    expect(jobLine(job({ kind: "restore", state: "done" }))).toEqual({ text: "Restored “before”.", tone: "done" });
    expect(jobLine(job({ state: "failed", reason: "the storage quota for snapshots is reached" }))).toEqual({
      text: "Taking “before” failed: the storage quota for snapshots is reached",
      tone: "danger",
    });
  });
});
