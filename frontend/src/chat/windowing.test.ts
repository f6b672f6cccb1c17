import { describe, expect, it } from "vitest";
import { anchorAt, anchoredTop, growRange, isAtBottom, rowAt, rowLayout, segments, totalHeight, visibleRows, type RowLayout } from "./windowing";

/** Rows "m0", "m1", … of the given heights. */
const rows = (...heights: number[]): RowLayout => rowLayout(heights.map((_, i) => `m${i}`), (i) => heights[i]);
/** `count` rows of `height` px. */
const even = (count: number, height: number) => rows(...Array.from({ length: count }, () => height));

describe("rowLayout", () => {
  it("places each row below the one before", () => {
    const layout = rows(40, 10, 300);
    expect([...layout.offsets]).toEqual([0, 40, 50, 350]);
    expect(totalHeight(layout)).toBe(350);
    expect(layout.index.get("m2")).toBe(2);
  });
  it("counts a negative height as none", () => expect([...rows(10, -5, 10).offsets]).toEqual([0, 10, 10, 20]));
  it("is empty for no rows", () => expect(totalHeight(rows())).toBe(0));
});

describe("rowAt", () => {
  const layout = rows(40, 10, 300);
  const check = (y: number, expected: number) => expect(rowAt(layout, y)).toBe(expected);
  it("finds the row that holds a position", () => {
    check(0, 0);
    check(39.5, 0);
    check(40, 1);
    check(49, 1);
    check(50, 2);
    check(349, 2);
  });
  it("clamps positions outside the list", () => {
    check(-10, 0);
    check(10_000, 2);
  });
  it("skips rows of no height", () => expect(rowAt(rows(10, 0, 0, 10), 10)).toBe(3));
  it("says -1 for no rows", () => expect(rowAt(rows(), 0)).toBe(-1));
});

describe("visibleRows", () => {
  const check = (layout: RowLayout, top: number, height: number, overscan: number, expected: [number, number]) =>
    expect(visibleRows(layout, top, height, overscan)).toEqual({ start: expected[0], end: expected[1] });

  it("shows the rows that intersect the viewport", () => check(even(100, 50), 0, 200, 0, [0, 4]));
  it("counts partly seen rows at both edges", () => check(even(100, 50), 25, 200, 0, [0, 5]));
  it("does not count a row that starts exactly at the viewport's bottom", () => check(even(100, 50), 50, 100, 0, [1, 3]));
  it("widens both sides by the overscan", () => check(even(100, 50), 1000, 200, 100, [18, 26]));
  it("stops at the last row", () => check(even(100, 50), 4800, 200, 100, [94, 100]));
  it("clamps a scroll past the end (a list that shrank) to the last row", () => check(even(10, 50), 5000, 200, 0, [9, 10]));
  it("clamps a negative scroll (rubber band)", () => check(even(10, 50), -40, 100, 0, [0, 2]));
  it("shows one row when one row is taller than the viewport", () => check(rows(50, 50, 40_000, 50), 20_000, 600, 300, [2, 3]));
  it("shows many short rows beside a tall one", () => check(rows(...Array(30).fill(20), 4000), 560, 600, 0, [28, 31]));
  it("is empty for no rows", () => check(rows(), 0, 600, 300, [0, 0]));
  it("renders one row in a viewport of no height", () => check(even(10, 50), 120, 0, 0, [2, 3]));

  it("renders no more than the viewport and overscan hold, and always the row at the top", () => {
    const heights = Array.from({ length: 500 }, (_, i) => [44, 44, 4100, 60][i % 4]);
    const layout = rows(...heights);
    for (let top = 0; top < totalHeight(layout); top += 977) {
      const { start, end } = visibleRows(layout, top, 650, 325);
      expect(start).toBeLessThanOrEqual(rowAt(layout, top));
      expect(end).toBeGreaterThan(rowAt(layout, Math.min(top + 649, totalHeight(layout) - 1)));
      // Rows wholly outside the viewport widened by the overscan are not rendered.
      expect(layout.offsets[start + 1]).toBeGreaterThan(top - 325);
      expect(layout.offsets[end - 1]).toBeLessThan(top + 650 + 325);
      expect(end - start).toBeLessThanOrEqual(Math.ceil((650 + 2 * 325) / 44) + 2);
    }
  });
});

describe("segments", () => {
  const layout = rows(10, 20, 30, 40, 50);
  it("puts gaps as tall as the rows they stand for around the rendered ones", () =>
    expect(segments(layout, { start: 1, end: 3 })).toEqual([
      { gap: 10, first: 0, rows: 1 },
      { row: 1 },
      { row: 2 },
      { gap: 90, first: 3, rows: 2 },
    ]));
  it("renders pinned rows out of the range in their place", () =>
    expect(segments(layout, { start: 3, end: 5 }, [0])).toEqual([
      { row: 0 },
      { gap: 50, first: 1, rows: 2 },
      { row: 3 },
      { row: 4 },
    ]));
  it("renders a pinned row inside the range once, and ignores pins out of bounds", () =>
    expect(segments(layout, { start: 0, end: 2 }, [1, 7, -1])).toEqual([{ row: 0 }, { row: 1 }, { gap: 120, first: 2, rows: 3 }]));
  it("is one gap when nothing is rendered", () => expect(segments(layout, { start: 0, end: 0 })).toEqual([{ gap: 150, first: 0, rows: 5 }]));
  it("keeps the total height whatever is rendered", () => {
    for (const [start, end, pin] of [
      [0, 5, 0],
      [2, 3, 4],
      [4, 5, 0],
      [0, 0, 2],
    ]) {
      const height = segments(layout, { start, end }, [pin]).reduce((sum, s) => sum + ("gap" in s ? s.gap : layout.offsets[s.row + 1] - layout.offsets[s.row]), 0);
      expect(height).toBe(totalHeight(layout));
    }
  });
});

describe("the scroll anchor", () => {
  it("is the row at the viewport's top and how far above the top it began", () => {
    expect(anchorAt(rows(100, 100, 100), 150)).toEqual({ key: "m1", top: -50 });
    expect(anchorAt(rows(100, 100, 100), 200)).toEqual({ key: "m2", top: 0 });
    expect(anchorAt(rows(), 0)).toBeUndefined();
  });

  it("keeps the anchored row where it was when rows above it are measured", () => {
    // Estimated at 100 px each, the rows above turn out 40 px tall once rendered.
    const before = even(10, 100);
    const anchor = anchorAt(before, 520)!;
    const after = rowLayout(before.keys, (i) => (i < 5 ? 40 : 100));
    const top = anchoredTop(after, anchor)!;
    expect(top).toBe(220);
    expect(anchorAt(after, top)).toEqual(anchor);
  });

  it("keeps it when rows below it grow (nothing to move)", () => {
    const anchor = anchorAt(even(10, 100), 330)!;
    expect(anchoredTop(rowLayout(even(10, 100).keys, (i) => (i > 3 ? 500 : 100)), anchor)).toBe(330);
  });

  it("follows its row when messages are added before it", () => {
    const anchor = anchorAt(even(3, 100), 150)!; // m1, 50 px above the top
    const grown = rowLayout(["m-1", "m0", "m1", "m2"], () => 100);
    expect(anchoredTop(grown, anchor)).toBe(250);
  });

  it("gives up when its row is gone", () => {
    const anchor = anchorAt(even(3, 100), 150)!;
    expect(anchoredTop(rowLayout(["m0", "m2"], () => 100), anchor)).toBeUndefined();
  });
});

describe("isAtBottom", () => {
  it("is within the slack of the end", () => {
    expect(isAtBottom({ scrollTop: 1000, clientHeight: 500, scrollHeight: 1500 })).toBe(true);
    expect(isAtBottom({ scrollTop: 960, clientHeight: 500, scrollHeight: 1500 })).toBe(true);
    expect(isAtBottom({ scrollTop: 900, clientHeight: 500, scrollHeight: 1500 })).toBe(false);
    expect(isAtBottom({ scrollTop: 0, clientHeight: 500, scrollHeight: 300 })).toBe(true);
  });
});

describe("growRange", () => {
  const r = (start: number, end: number) => ({ start, end });
  it("takes the next range when it adds few rows", () => {
    expect(growRange(r(0, 10), r(2, 13), 5, 3)).toEqual(r(2, 13));
    expect(growRange(r(0, 0), r(7, 9), 8, 3)).toEqual(r(7, 9));
  });
  it("opens at the pivot and grows towards it first, a few rows at a time", () => {
    // A conversation opened at its end: the last rows first, then upwards.
    let shown = growRange(r(0, 0), r(40, 52), 51, 3);
    expect(shown).toEqual(r(49, 52));
    shown = growRange(shown, r(40, 52), 51, 3);
    expect(shown).toEqual(r(46, 52));
    for (let i = 0; i < 10 && (shown.start !== 40 || shown.end !== 52); i++) shown = growRange(shown, r(40, 52), 51, 3);
    expect(shown).toEqual(r(40, 52));
  });
  it("extends what is shown towards the rows the user looks at", () => {
    expect(growRange(r(10, 20), r(10, 30), 25, 4)).toEqual(r(10, 24));
    expect(growRange(r(10, 20), r(0, 20), 2, 4)).toEqual(r(6, 20));
    // The pivot inside: both sides.
    expect(growRange(r(10, 12), r(0, 30), 11, 4)).toEqual(r(8, 14));
  });
});
