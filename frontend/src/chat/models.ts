/**
 * The chat's model picker: which model a prompt names. The empty choice is the session's own
 * (its template's `opencode.json`, or the instance's default), so a prompt without a choice
 * names no model and opencode picks as it always did. A choice is remembered per session in
 * this browser, and forgotten when the model is no longer offered (the admin changed the
 * allow list or the providers).
 */
import type { ModelList } from "../api";

const KEY = "octo.model.";

/** The remembered choice for `sessionId`, if it is still offered; else "" (the default). */
export function storedChoice(sessionId: string, list: ModelList | undefined): string {
  let stored: string | null = null;
  try {
    stored = window.localStorage.getItem(KEY + sessionId);
  } catch {
    // Storage disabled: the default.
  }
  return stored && list?.models.some((m) => m.id === stored) ? stored : "";
}

export function storeChoice(sessionId: string, choice: string): void {
  try {
    if (choice) window.localStorage.setItem(KEY + sessionId, choice);
    else window.localStorage.removeItem(KEY + sessionId);
  } catch {
    // Storage disabled: the choice lasts for this page.
  }
}

/** What `promptAsync` gets as `model` for `choice`: nothing for the default. */
export function promptModel(
  choice: string,
  list: ModelList | undefined,
): { providerID: string; modelID: string } | undefined {
  if (!choice || !list?.models.some((m) => m.id === choice)) return undefined;
  return { providerID: list.opencode_provider, modelID: choice };
}

/** Whether there is a choice to offer at all: two models or more. */
export function offersChoice(list: ModelList | undefined): boolean {
  return (list?.models.length ?? 0) > 1;
}
