import { describe, expect, it } from "vitest";
import { byDay, bySessionAndModel, budgetBody, budgetStanding } from "./usage";

const row = (day: string, session: string, model: string, prompt: number, completion: number) => ({
  day,
  user: "alice",
  session,
  model,
  prompt_tokens: prompt,
  completion_tokens: completion,
  requests: 1,
});

describe("usage sums", () => {
  it("fills every day of the period and adds each day's rows", () => {
    const days = byDay([row("2026-12-02", "a", "m", 10, 1), row("2026-12-02", "b", "m", 5, 5)], "2026-12-01", "2026-12-03");
    expect(days).toEqual([
      { day: "2026-12-01", prompt: 0, completion: 0 },
      { day: "2026-12-02", prompt: 15, completion: 6 },
      { day: "2026-12-03", prompt: 0, completion: 0 },
    ]);
  });

  it("groups by session and model, most tokens first", () => {
    const groups = bySessionAndModel([row("2026-12-01", "a", "m", 1, 1), row("2026-12-02", "b", "m", 50, 0), row("2026-12-02", "a", "m", 2, 2)]);
    expect(groups.map((g) => [g.session, g.prompt, g.completion, g.requests])).toEqual([
      ["b", 50, 0, 1],
      ["a", 3, 3, 2],
    ]);
  });
});

describe("budgetStanding", () => {
  it("says what is left and how full, never past 100 or below 0", () => {
    expect(budgetStanding({ tokens: 2_000_000, used: 500_000 })).toEqual({ left: 1_500_000, percent: 25, over: false });
    expect(budgetStanding({ tokens: 5, used: 9 })).toEqual({ left: 0, percent: 100, over: true });
    expect(budgetStanding({ tokens: 10, used: 10 })).toEqual({ left: 0, percent: 100, over: true });
    expect(budgetStanding({ tokens: 0, used: 0 })).toEqual({ left: 0, percent: 100, over: true });
  });
});

describe("budgetBody", () => {
  it("is the API's body for each choice, and refuses what is not a number of tokens", () => {
    expect(budgetBody("role", "")).toEqual({ body: {} });
    expect(budgetBody("unlimited", "12")).toEqual({ body: { unlimited: true } });
    expect(budgetBody("own", "2,000,000")).toEqual({ body: { monthly_tokens: 2_000_000 } });
    expect(budgetBody("own", " 500 000 ")).toEqual({ body: { monthly_tokens: 500_000 } });
    expect(budgetBody("own", "")).toHaveProperty("error");
    expect(budgetBody("own", "1e6")).toHaveProperty("error");
    expect(budgetBody("own", "-5")).toHaveProperty("error");
    expect(budgetBody("own", "0")).toHaveProperty("error");
    expect(budgetBody("own", "99999999999999999999")).toHaveProperty("error");
  });
});
