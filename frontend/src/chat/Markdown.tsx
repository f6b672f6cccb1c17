// A reply's Markdown, rendered by `markdown.ts` once that module (marked, DOMPurify, highlight.js)
// has loaded; plain text until then. Rendered HTML is kept for the last CACHED texts, so that a
// message scrolled out of the (windowed) list and back is not parsed again.
import { memo, useEffect, useState, type MouseEvent } from "react";
import { copyText } from "../clipboard";

type Renderer = typeof import("./markdown");
let loaded: Renderer | undefined;
let loading: Promise<Renderer> | undefined;

/** Starts loading the renderer (the chat pane calls it on mount, before the first reply). */
export function loadRenderer(): Promise<Renderer> {
  loading ??= import("./markdown").then((module) => {
    loaded = module;
    // Compiled ahead in small tasks, not inside the first render of a long conversation.
    const steps = [...module.warmUpSteps];
    const next = () => {
      steps.shift()?.();
      if (steps.length) setTimeout(next, 0);
    };
    setTimeout(next, 0);
    return module;
  });
  return loading;
}

/** How many rendered texts are kept (per mode: long code blocks clipped, or whole). */
const CACHED = 64;
const cache = [new Map<string, string>(), new Map<string, string>()];

function rendered(renderer: Renderer, text: string, full: boolean): string {
  const kept = cache[full ? 1 : 0];
  let html = kept.get(text);
  if (html === undefined) {
    html = renderer.renderMarkdown(text, full);
    if (kept.size >= CACHED) kept.delete(kept.keys().next().value!);
  } else {
    kept.delete(text); // most recently used last
  }
  kept.set(text, html);
  return html;
}

export const Markdown = memo(function Markdown(props: { text: string }): JSX.Element {
  const [renderer, setRenderer] = useState<Renderer | undefined>(() => loaded);
  // Long code blocks shown whole (the reader asked).
  const [full, setFull] = useState(false);
  useEffect(() => {
    if (renderer) return;
    let live = true;
    loadRenderer().then(
      (module) => live && setRenderer(module),
      () => {}, // stays plain text; the failed chunk load is in the console
    );
    return () => {
      live = false;
    };
  }, [renderer]);
  if (!renderer) return <div className="md md-plain">{props.text}</div>;
  const onClick = (event: MouseEvent<HTMLDivElement>) => {
    const target = event.target as HTMLElement;
    if (target.closest(".md-code-more")) setFull(true);
    else copyCode(event.currentTarget, target, renderer, props.text);
  };
  return <div className="md" onClick={onClick} dangerouslySetInnerHTML={{ __html: rendered(renderer, props.text, full) }} />;
});

/** A click on a code block's copy button copies that block's code (all of it, when clipped). */
function copyCode(root: HTMLElement, target: HTMLElement, renderer: Renderer, source: string) {
  const button = target.closest<HTMLButtonElement>(".md-code-copy");
  const pre = button?.parentElement;
  const code = pre?.querySelector("code");
  if (!button || !pre || !code) return;
  let text = code.textContent ?? "";
  if (pre.classList.contains("md-code-clipped")) {
    const index = [...root.querySelectorAll("pre.md-code")].indexOf(pre);
    text = renderer.codeBlocks(source)[index] ?? text;
  }
  copyText(text).then(
    () => flash(button, "Copied"),
    () => flash(button, "Copy failed"),
  );
}

function flash(button: HTMLButtonElement, label: string) {
  button.textContent = label;
  setTimeout(() => {
    button.textContent = "Copy";
  }, 1500);
}
