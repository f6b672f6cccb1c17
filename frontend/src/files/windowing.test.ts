import { describe, expect, it } from "vitest";
import { anchoredScrollTop, pageRows, scrollToReveal, windowRange } from "./windowing";

describe("windowRange", () => {
  const check = (count: number, scrollTop: number, height: number, overscan: number, expected: [number, number]) =>
    expect(windowRange(count, 24, { scrollTop, height }, overscan)).toEqual({ start: expected[0], end: expected[1] });

  it("shows the first screen plus overscan at the top", () => check(10_000, 0, 240, 8, [0, 18]));
  it("widens both sides in the middle", () => check(10_000, 2400, 240, 8, [92, 118]));
  it("counts a partly seen row at either edge", () => check(10_000, 12, 240, 0, [0, 11]));
  it("stops at the last row", () => check(10_000, 10_000 * 24 - 240, 240, 8, [9982, 10_000]));
  it("clamps a scroll past the end (rubber band, a shrunk list)", () => check(10, 5000, 240, 8, [10, 10]));
  it("clamps a negative scroll", () => check(100, -50, 48, 0, [0, 2]));
  it("is empty for no rows", () => check(0, 0, 240, 8, [0, 0]));
  it("renders overscan only in a zero-height viewport", () => check(100, 0, 0, 8, [0, 8]));
  it("never renders more than the viewport and twice the overscan", () => {
    for (let top = 0; top < 24 * 1000; top += 37) {
      const r = windowRange(1000, 24, { scrollTop: top, height: 600 }, 8);
      expect(r.end - r.start).toBeLessThanOrEqual(600 / 24 + 1 + 16);
      expect(r.start).toBeLessThanOrEqual(Math.floor(top / 24));
    }
  });
});

describe("scrollToReveal", () => {
  const view = { scrollTop: 240, height: 240 }; // rows 10..19 seen
  it("leaves a seen row alone", () => expect(scrollToReveal(12, 24, view)).toBeNull());
  it("scrolls up to a row above", () => expect(scrollToReveal(3, 24, view)).toBe(72));
  it("scrolls down just enough for a row below", () => expect(scrollToReveal(20, 24, view)).toBe(264));
  it("reveals a half-hidden row at the bottom", () => expect(scrollToReveal(19, 24, { scrollTop: 250, height: 240 })).toBeNull());
  it("reveals a half-hidden row at the top", () => expect(scrollToReveal(10, 24, { scrollTop: 250, height: 240 })).toBe(240));
});

describe("pageRows", () => {
  it("keeps one row of context", () => expect(pageRows(24, 240)).toBe(9));
  it("moves at least one row", () => expect(pageRows(24, 10)).toBe(1));
});

describe("anchoredScrollTop", () => {
  const keys = (...names: string[]) => names;
  const ten = keys("a", "b", "c", "d", "e", "f", "g", "h", "i", "j");

  it("keeps the first row in view where it was when rows come or go above it", () => {
    // Scrolled to row 3 ("d"), 5 px into it; one row added above: one row further down.
    expect(anchoredScrollTop(ten, ["0", ...ten], 24, 3 * 24 + 5)).toBe(4 * 24 + 5);
    // Two removed above it.
    expect(anchoredScrollTop(ten, ten.filter((k) => k !== "a" && k !== "b"), 24, 3 * 24)).toBe(24);
  });

  it("leaves the scroll alone at the top, when nothing moved, or rows changed below", () => {
    expect(anchoredScrollTop(ten, ["0", ...ten], 24, 0)).toBeNull();
    expect(anchoredScrollTop(ten, [...ten], 24, 48)).toBeNull();
    expect(anchoredScrollTop(ten, [...ten, "k", "l"], 24, 48)).toBeNull();
  });

  it("anchors on the next row still there when the first one went", () => {
    // "d" (first in view) and "e" removed, and one row added above: "f" stays where it was.
    const after = ["0", ...ten.filter((k) => k !== "d" && k !== "e")];
    // Before: "f" at index 5, 2 rows below the top of the view (row 3). After: at index 4.
    expect(anchoredScrollTop(ten, after, 24, 3 * 24)).toBe((4 - 2) * 24);
  });

  it("gives up when none of the rows in view are left", () => {
    expect(anchoredScrollTop(ten, ["x", "y"], 24, 3 * 24)).toBeNull();
  });
});
