// @vitest-environment jsdom
import { afterEach, describe, expect, it } from "vitest";
import type { ModelList } from "../api";
import { offersChoice, promptModel, storeChoice, storedChoice } from "./models";

const list: ModelList = {
  models: [
    { id: "big", provider: "default" },
    { id: "claude-x", provider: "anthropic" },
  ],
  default: "big",
  opencode_provider: "octo",
};

describe("the chat's model picker", () => {
  afterEach(() => window.localStorage.clear());

  it("names no model for the default, and the gateway's provider for a choice", () => {
    expect(promptModel("", list)).toBeUndefined();
    expect(promptModel("claude-x", list)).toEqual({ providerID: "octo", modelID: "claude-x" });
    // A model no longer offered falls back to the default rather than a refused request.
    expect(promptModel("gone", list)).toBeUndefined();
    expect(promptModel("big", undefined)).toBeUndefined();
  });

  it("remembers a choice per session while it is offered", () => {
    storeChoice("s1", "claude-x");
    expect(storedChoice("s1", list)).toBe("claude-x");
    expect(storedChoice("s2", list)).toBe("");
    expect(storedChoice("s1", { ...list, models: [list.models[0]] })).toBe("");
    expect(storedChoice("s1", undefined)).toBe("");
    storeChoice("s1", "");
    expect(window.localStorage.getItem("octo.model.s1")).toBeNull();
  });

  it("offers a choice only between two models or more", () => {
    expect(offersChoice(list)).toBe(true);
    expect(offersChoice({ ...list, models: [list.models[0]] })).toBe(false);
    expect(offersChoice(undefined)).toBe(false);
  });
});
