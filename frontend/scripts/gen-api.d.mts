// Types of gen-api.mjs for the test that imports it.
export const DOCUMENT: URL;
export const OUTPUT: URL;
export function generate(): Promise<string>;
