// Windowing for long lists of fixed-height rows: which rows a scrolled viewport shows (plus a few
// either side, so a fast scroll does not flash blank), and where to scroll so a row is seen.
// Pure arithmetic, unit-tested; WindowedRows.tsx renders with it.

/** The rows to render: `start` (inclusive) to `end` (exclusive). */
export interface WindowRange {
  start: number;
  end: number;
}

export interface Viewport {
  /** The scroll container's `scrollTop`, measured from the first row. */
  scrollTop: number;
  /** The container's visible height. */
  height: number;
}

/** Rows rendered beyond each edge of the viewport. */
export const OVERSCAN = 8;

/** The rows of `count` (each `rowHeight` px) that `view` shows, widened by `overscan` each side. */
export function windowRange(count: number, rowHeight: number, view: Viewport, overscan = OVERSCAN): WindowRange {
  if (count <= 0 || rowHeight <= 0) return { start: 0, end: 0 };
  const top = Math.max(0, view.scrollTop);
  const first = Math.floor(top / rowHeight);
  const last = Math.ceil((top + Math.max(0, view.height)) / rowHeight);
  const start = Math.min(count, Math.max(0, first - overscan));
  const end = Math.min(count, Math.max(start, last + overscan));
  return { start, end };
}

/** The `scrollTop` that brings row `index` fully into `view`, moving as little as possible, or
 * null when it is already fully seen. */
export function scrollToReveal(index: number, rowHeight: number, view: Viewport): number | null {
  const top = index * rowHeight;
  const bottom = top + rowHeight;
  if (top < view.scrollTop) return top;
  if (bottom > view.scrollTop + view.height) return Math.max(0, bottom - view.height);
  return null;
}

/** How many rows PageUp/PageDown move: a viewport's worth, less one row of context, at least 1. */
export function pageRows(rowHeight: number, height: number): number {
  if (rowHeight <= 0) return 1;
  return Math.max(1, Math.floor(height / rowHeight) - 1);
}

/** After the rows changed from `before` to `after` (their keys, in order) while scrolled to
 * `scrollTop` (from the first row): the `scrollTop` that keeps the first row in view (or, if it
 * went, the next one still there) where it was on screen, or null to leave the scroll alone —
 * at the top (where new rows should show), or when that row did not move. */
export function anchoredScrollTop(
  before: readonly string[],
  after: readonly string[],
  rowHeight: number,
  scrollTop: number,
  look = 64,
): number | null {
  if (scrollTop <= 0 || rowHeight <= 0 || before.length === 0) return null;
  const first = Math.floor(scrollTop / rowHeight);
  // The common case (a page of a folder arrived, a row below changed): the first row in view is
  // where it was; no need to look for it among every row.
  if (first < before.length && before[first] === after[first]) return null;
  const offset = scrollTop - first * rowHeight;
  const where = new Map<string, number>();
  const keys = before.slice(first, first + look);
  if (keys.length === 0) return null;
  const wanted = new Set(keys);
  for (let i = 0; i < after.length && where.size < wanted.size; i++) {
    if (wanted.has(after[i])) where.set(after[i], i);
  }
  for (let k = 0; k < keys.length; k++) {
    const index = where.get(keys[k]);
    if (index === undefined) continue;
    const top = (index - k) * rowHeight + offset;
    return index - k === first ? null : Math.max(0, top);
  }
  return null;
}
