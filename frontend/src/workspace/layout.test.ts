import { describe, expect, it } from "vitest";
import { DEFAULT_LAYOUT, keyDelta, moveSplitter, parseLayout, type Layout } from "./layout";

const sum = (l: Layout) => l[0] + l[1] + l[2];
const close = (a: Layout, b: Layout) => a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 9));

describe("moveSplitter", () => {
  it("moves only the two neighbours", () => {
    close(moveSplitter([0.4, 0.3, 0.3], 0, 0.1), [0.5, 0.2, 0.3]);
    close(moveSplitter([0.4, 0.3, 0.3], 1, -0.1), [0.4, 0.2, 0.4]);
  });

  it("keeps each pane at the minimum", () => {
    close(moveSplitter([0.4, 0.3, 0.3], 0, 1, 0.1), [0.6, 0.1, 0.3]);
    close(moveSplitter([0.4, 0.3, 0.3], 0, -1, 0.1), [0.1, 0.6, 0.3]);
    close(moveSplitter([0.4, 0.3, 0.3], 1, 1, 0.1), [0.4, 0.5, 0.1]);
  });

  it("keeps the sum at 1", () => {
    let layout: Layout = DEFAULT_LAYOUT;
    for (const [index, delta] of [[0, 0.3], [1, -0.7], [0, -0.05], [1, 0.2]] as const) {
      layout = moveSplitter(layout, index, delta);
      expect(sum(layout)).toBeCloseTo(1, 9);
    }
  });

  it("returns the same layout when nothing moves", () => {
    const layout: Layout = [0.12, 0.5, 0.38];
    expect(moveSplitter(layout, 0, -0.1)).toBe(layout);
    expect(moveSplitter(layout, 0, Number.NaN)).toBe(layout);
  });
});

describe("parseLayout", () => {
  it("accepts a stored layout", () => {
    expect(parseLayout("[0.5,0.2,0.3]")).toEqual([0.5, 0.2, 0.3]);
  });

  it("falls back to the default for anything else", () => {
    for (const text of [null, "", "nope", "[0.5,0.5]", "[0.9,0.05,0.05]", '["a",0.5,0.5]', "[0.5,0.5,0.5]", "{}"]) {
      expect(parseLayout(text)).toBe(DEFAULT_LAYOUT);
    }
  });
});

describe("keyDelta", () => {
  it("maps arrows, Shift and Home/End", () => {
    expect(keyDelta("ArrowLeft", false)).toBeCloseTo(-0.02);
    expect(keyDelta("ArrowRight", true)).toBeCloseTo(0.08);
    expect(keyDelta("Home", false)).toBe(-1);
    expect(keyDelta("End", false)).toBe(1);
    expect(keyDelta("a", false)).toBeNull();
  });
});
