// What the Snapshots menu shows, as pure functions of the API's answers (tested in
// snapshots.test.ts): a default name for a new snapshot, and a job's progress as a line.
import type { SnapshotJob } from "../api";
import { binarySize } from "../sessions";

/** A name for a snapshot taken now: `Snapshot 2026-12-03 14:05` (local time). */
export function defaultSnapshotName(now: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `Snapshot ${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())} ${pad(now.getHours())}:${pad(now.getMinutes())}`;
}

/** The job as one line: `Taking “x”: 45% (12 MiB of 27 MiB)`, `Restored “x”.`, `Restoring “x” failed: …`. */
export function jobLine(job: SnapshotJob): { text: string; tone: "busy" | "done" | "danger" } {
  const what = job.kind === "create" ? "Taking" : "Restoring";
  const name = `“${job.name}”`;
  if (job.state === "running") {
    if (job.total_bytes === 0) return { text: `${what} ${name}…`, tone: "busy" };
    const percent = Math.floor((Math.min(job.done_bytes, job.total_bytes) * 100) / job.total_bytes);
    return {
      text: `${what} ${name}: ${percent}% (${binarySize(job.done_bytes)} of ${binarySize(job.total_bytes)})`,
      tone: "busy",
    };
  }
  if (job.state === "done") {
    return { text: job.kind === "create" ? `Took ${name}.` : `Restored ${name}.`, tone: "done" };
  }
  return { text: `${what} ${name} failed: ${job.reason ?? "unknown reason"}`, tone: "danger" };
}
