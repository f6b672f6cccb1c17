// The workspace's pane layout: three widths as fractions that sum to 1, moved by splitters
// (pointer or keyboard), each kept at or above a minimum, remembered in localStorage.
import { safeGet, safeSet } from "../theme";

export type Layout = readonly [number, number, number];

export const DEFAULT_LAYOUT: Layout = [0.42, 0.24, 0.34];
export const MIN_FRACTION = 0.12;
/** One arrow-key press moves a splitter by this much; with Shift, four times as much. */
export const KEY_STEP = 0.02;
const STORAGE_KEY = "octo.workspace.layout";

/**
 * Moves splitter `index` (0: between panes 0 and 1, 1: between 1 and 2) by `delta` (a fraction of
 * the whole width, positive = right). Only the two neighbours change; neither goes below `min`.
 */
export function moveSplitter(layout: Layout, index: 0 | 1, delta: number, min = MIN_FRACTION): Layout {
  const left = layout[index];
  const right = layout[index + 1];
  const clamped = Math.max(min - left, Math.min(right - min, delta));
  if (!Number.isFinite(clamped) || clamped === 0) return layout;
  const next = [...layout] as [number, number, number];
  next[index] = left + clamped;
  next[index + 1] = right - clamped;
  return next;
}

/** A layout from storage if it is valid, else the default. */
export function parseLayout(text: string | null): Layout {
  if (!text) return DEFAULT_LAYOUT;
  try {
    const value: unknown = JSON.parse(text);
    if (
      Array.isArray(value) &&
      value.length === 3 &&
      value.every((v) => typeof v === "number" && Number.isFinite(v) && v >= MIN_FRACTION - 1e-9) &&
      Math.abs(value[0] + value[1] + value[2] - 1) < 1e-6
    ) {
      return [value[0], value[1], value[2]];
    }
  } catch {
    // Corrupt: fall back to the default.
  }
  return DEFAULT_LAYOUT;
}

export function loadLayout(): Layout {
  return parseLayout(safeGet(STORAGE_KEY));
}

export function saveLayout(layout: Layout): void {
  safeSet(STORAGE_KEY, JSON.stringify(layout));
}

/** The splitter movement for a key, or null when the key does not move it. */
export function keyDelta(key: string, shift: boolean): number | null {
  const step = shift ? KEY_STEP * 4 : KEY_STEP;
  if (key === "ArrowLeft") return -step;
  if (key === "ArrowRight") return step;
  if (key === "Home") return -1;
  if (key === "End") return 1;
  return null;
}
