import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { generate, OUTPUT } from "../scripts/gen-api.mjs";

describe("api-types.gen.ts", () => {
  it("is what `npm run gen:api` makes of octod's OpenAPI document", async () => {
    const committed = readFileSync(OUTPUT, "utf8");
    const fresh = await generate();
    // A boolean, not the two texts: a stale file would print thousands of lines.
    expect(committed === fresh, "src/api-types.gen.ts is stale: run `npm run gen:api` in frontend/").toBe(true);
  });
});
