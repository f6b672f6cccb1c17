// A reply's Markdown, rendered by `markdown.ts` once that module (marked, DOMPurify, highlight.js)
// has loaded; plain text until then.
import { memo, useEffect, useState, type MouseEvent } from "react";
import { copyText } from "../clipboard";

type Render = (source: string) => string;
let loaded: Render | undefined;
let loading: Promise<Render> | undefined;

/** Starts loading the renderer (the chat pane calls it on mount, before the first reply). */
export function loadRenderer(): Promise<Render> {
  loading ??= import("./markdown").then((module) => {
    loaded = module.renderMarkdown;
    return loaded;
  });
  return loading;
}

export const Markdown = memo(function Markdown(props: { text: string }): JSX.Element {
  const [render, setRender] = useState<Render | undefined>(() => loaded);
  useEffect(() => {
    if (render) return;
    let live = true;
    loadRenderer().then(
      (fn) => live && setRender(() => fn),
      () => {}, // stays plain text; the failed chunk load is in the console
    );
    return () => {
      live = false;
    };
  }, [render]);
  if (!render) return <div className="md md-plain">{props.text}</div>;
  return <div className="md" onClick={copyCode} dangerouslySetInnerHTML={{ __html: render(props.text) }} />;
});

/** A click on a code block's copy button copies that block's code. */
function copyCode(event: MouseEvent<HTMLDivElement>) {
  const button = (event.target as HTMLElement).closest<HTMLButtonElement>(".md-code-copy");
  const code = button?.parentElement?.querySelector("code");
  if (!button || !code) return;
  copyText(code.textContent ?? "").then(
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
