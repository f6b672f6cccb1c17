// Windowing for the message list, whose rows (messages) have different heights: where each row
// starts (measured heights where known, estimates elsewhere), which rows a scrolled viewport shows
// (plus overscan), what to render (those rows, rows pinned by the caller, and blank gaps of the
// right height between them), and the scroll anchor that keeps what the user looks at in place
// when heights above it change. Pure arithmetic, unit-tested; MessageList.tsx renders with it.
//
// Coordinates are "list" pixels: 0 is the top of the first row.

/** Where each of `count` rows starts: `offsets[i]` is row i's top, `offsets[count]` the total. */
export interface RowLayout {
  keys: readonly string[];
  offsets: Float64Array;
  /** Row index by key. */
  index: ReadonlyMap<string, number>;
}

/** The layout of rows `keys`, row i being `heightOf(i)` px tall. */
export function rowLayout(keys: readonly string[], heightOf: (index: number) => number): RowLayout {
  const offsets = new Float64Array(keys.length + 1);
  const index = new Map<string, number>();
  for (let i = 0; i < keys.length; i++) {
    offsets[i + 1] = offsets[i] + Math.max(0, heightOf(i));
    index.set(keys[i], i);
  }
  return { keys, offsets, index };
}

export function totalHeight(layout: RowLayout): number {
  return layout.offsets[layout.keys.length];
}

/** The row at list position `y` (clamped to the first and last row; -1 when there are none). */
export function rowAt(layout: RowLayout, y: number): number {
  const count = layout.keys.length;
  if (count === 0) return -1;
  const { offsets } = layout;
  // The last row whose top is at or above y.
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid] <= y) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The rows to render: `start` (inclusive) to `end` (exclusive). */
export interface RowRange {
  start: number;
  end: number;
}

/** The rows that intersect `[top, top + height)` widened by `overscan` px on each side. */
export function visibleRows(layout: RowLayout, top: number, height: number, overscan: number): RowRange {
  const count = layout.keys.length;
  if (count === 0) return { start: 0, end: 0 };
  const from = Math.max(0, top - overscan);
  const to = Math.min(totalHeight(layout), top + Math.max(0, height) + overscan);
  if (from >= totalHeight(layout)) return { start: count - 1, end: count };
  const start = rowAt(layout, from);
  // The first row that starts at or below `to` ends the range (rows that start exactly there
  // are not seen).
  let end = rowAt(layout, to);
  if (layout.offsets[end] < to || end === start) end += 1;
  return { start, end: Math.min(count, Math.max(end, start + 1)) };
}

/**
 * The range to render on the way from `shown` to `next` when at most `max` rows may be added at a
 * time: `next` itself if it adds no more; else the rows both share (or, sharing none, the row of
 * `next` nearest `pivot`), grown by `max` rows, first towards `pivot` (the row the user looks
 * at: the last while following the end), then on both sides. Rendering a conversation's rows a
 * few at a time keeps each task short; the caller asks again on the next frame.
 */
export function growRange(shown: RowRange, next: RowRange, pivot: number, max: number): RowRange {
  const shared = Math.max(0, Math.min(shown.end, next.end) - Math.max(shown.start, next.start));
  if (next.end - next.start - shared <= Math.max(1, max) || next.end <= next.start) return next;
  let start: number;
  let end: number;
  let budget = Math.max(1, max);
  if (shared > 0) {
    start = Math.max(shown.start, next.start);
    end = Math.min(shown.end, next.end);
  } else {
    start = Math.min(Math.max(pivot, next.start), next.end - 1);
    end = start + 1;
    budget -= 1;
  }
  while (budget > 0 && (start > next.start || end < next.end)) {
    const towards = pivot >= end ? "down" : pivot < start ? "up" : budget % 2 === 0 ? "down" : "up";
    const down = end < next.end && (towards === "down" || start <= next.start);
    if (down) end += 1;
    else start -= 1;
    budget -= 1;
  }
  return { start, end };
}

/** What to render, in order: a row, or a gap standing in for rows that are not rendered. */
/** A gap stands for rows `first` to `first + rows` (exclusive) and is `gap` px tall. */
export type Segment = { row: number } | { gap: number; first: number; rows: number };

/** The rows of `range` and the `pinned` rows (any, e.g. the one holding focus), in order, with
 * gaps as tall as the rows between them, so that every rendered row is where the layout says. */
export function segments(layout: RowLayout, range: RowRange, pinned: Iterable<number> = []): Segment[] {
  const count = layout.keys.length;
  const rows = new Set<number>();
  for (let i = Math.max(0, range.start); i < Math.min(count, range.end); i++) rows.add(i);
  for (const i of pinned) if (i >= 0 && i < count) rows.add(i);
  const sorted = [...rows].sort((a, b) => a - b);
  const out: Segment[] = [];
  let next = 0; // the first row not yet accounted for
  for (const row of sorted) {
    if (row > next) out.push({ gap: layout.offsets[row] - layout.offsets[next], first: next, rows: row - next });
    out.push({ row });
    next = row + 1;
  }
  if (next < count) out.push({ gap: layout.offsets[count] - layout.offsets[next], first: next, rows: count - next });
  return out;
}

/** The row the user is looking at and where its top is relative to the viewport's top (px; negative
 * when the row began above it). Keeping that row there keeps the view still. */
export interface Anchor {
  key: string;
  top: number;
}

/** The anchor of a viewport whose top is at list position `top`: the row at that position. */
export function anchorAt(layout: RowLayout, top: number): Anchor | undefined {
  const row = rowAt(layout, top);
  if (row < 0) return undefined;
  return { key: layout.keys[row], top: layout.offsets[row] - top };
}

/** The list position the viewport's top must move to so that `anchor` is where it was, or
 * undefined when its row is gone. */
export function anchoredTop(layout: RowLayout, anchor: Anchor): number | undefined {
  const row = layout.index.get(anchor.key);
  if (row === undefined) return undefined;
  return layout.offsets[row] - anchor.top;
}

/** Within `slack` px of the end: new content keeps it in view (stick to the bottom). */
export function isAtBottom(view: { scrollTop: number; clientHeight: number; scrollHeight: number }, slack = 48): boolean {
  return view.scrollHeight - view.scrollTop - view.clientHeight < slack;
}
