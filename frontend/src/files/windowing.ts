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
