// Markdown → sanitized HTML for the agent's replies: `marked` (GFM) parses, highlight.js (core with a
// handful of languages) colours fenced code, DOMPurify removes anything active (scripts, event
// handlers, javascript: URLs) and what a steered agent could turn against its reader (forms,
// buttons, styles, links into Octo's own API and sessions: see SANITIZE). A code block longer than
// CODE_LINES shows its first lines and a "show all" button until the reader asks (`full`): a reply
// holding a 2,000-line diff renders in a few milliseconds, not a hundred. Loaded lazily by the chat
// pane (`import("./markdown")`), so none of this is in the sign-in page's bundle.
import { Marked } from "marked";
import DOMPurify from "dompurify";
import { formatCount } from "./tools";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import go from "highlight.js/lib/languages/go";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

const languages = { bash, css, diff, go, javascript, json, markdown, python, rust, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(languages)) hljs.registerLanguage(name, language);
hljs.registerAliases(["sh", "shell", "console", "zsh"], { languageName: "bash" });
hljs.registerAliases(["js", "jsx", "mjs"], { languageName: "javascript" });
hljs.registerAliases(["ts", "tsx"], { languageName: "typescript" });
hljs.registerAliases(["html", "svg"], { languageName: "xml" });
hljs.registerAliases(["py"], { languageName: "python" });
hljs.registerAliases(["rs"], { languageName: "rust" });
hljs.registerAliases(["yml", "toml"], { languageName: "yaml" });
hljs.registerAliases(["md"], { languageName: "markdown" });

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Code blocks longer than this many lines show their first lines until asked for. */
export const CODE_LINES = 200;

// Set for the length of one (synchronous) `renderMarkdown`: whether long code blocks are shown
// whole, and the highlighted code blocks, which stand in the HTML as `<nonce><index><nonce>` until
// it has been sanitized (see renderMarkdown).
let showFull = false;
let codeBodies: string[] = [];
let nonce = "";

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    code({ text, lang }) {
      const language = (lang ?? "").trim().split(/\s+/)[0].toLowerCase();
      const known = language && hljs.getLanguage(language) ? language : "";
      const lines = showFull ? -1 : lineCount(text, CODE_LINES + 1);
      const clipped = lines > CODE_LINES;
      const shown = clipped ? firstLines(text, CODE_LINES) : text;
      const body = known ? hljs.highlight(shown, { language: known, ignoreIllegals: true }).value : escapeHtml(shown);
      const label = language ? `<span class="md-code-lang">${escapeHtml(language)}</span>` : "";
      // The buttons work through the chat's click handler (Markdown.tsx): no script in here.
      const copy = `<button type="button" class="md-code-copy" aria-label="Copy the code">Copy</button>`;
      const more = clipped
        ? `<button type="button" class="btn small ghost chat-output-more md-code-more" data-testid="chat-output-more">⋯ showing ${CODE_LINES} of ${formatCount(lineCount(text))} lines; show all</button>`
        : "";
      // The whole block (with its buttons, which the sanitizer forbids in a reply) joins the
      // HTML after sanitizing, behind a placeholder.
      const block = `<pre class="md-code${clipped ? " md-code-clipped" : ""}">${label}${copy}<code class="hljs${known ? ` language-${known}` : ""}">${body}</code></pre>${more}`;
      return `${nonce}${codeBodies.push(block) - 1}${nonce}\n`;
    },
  },
});

/** The number of lines of `text` (a final newline ends the last), counting no further than `limit`. */
function lineCount(text: string, limit = Infinity): number {
  let lines = 1;
  for (let at = text.indexOf("\n"); at >= 0 && at < text.length - 1 && lines < limit; at = text.indexOf("\n", at + 1)) lines++;
  return lines;
}

function firstLines(text: string, count: number): string {
  let at = -1;
  for (let i = 0; i < count; i++) {
    at = text.indexOf("\n", at + 1);
    if (at < 0) return text;
  }
  return text.slice(0, at);
}

/**
 * What a reply may not hold, besides what DOMPurify removes anyway (scripts, handlers,
 * `javascript:` URLs). A reply is written by an agent that a prompt injection can steer, so it
 * must not be able to ask for the user's password in a form of its own, dress itself up as the
 * UI with styles, or make the user's browser call Octo (a link or an image to `/api/…` or
 * `/sessions/…` of this origin carries the user's cookie).
 */
const SANITIZE = {
  USE_PROFILES: { html: true },
  ADD_ATTR: ["target"],
  FORBID_TAGS: ["form", "input", "button", "textarea", "select", "option", "optgroup", "datalist", "fieldset", "output", "style", "dialog"],
  FORBID_ATTR: ["style", "srcset", "action", "formaction", "form", "autofocus", "popover", "popovertarget"],
};

/** Attributes holding a URL that the browser fetches or navigates to. */
const URL_ATTRIBUTES = ["href", "src", "poster", "background", "xlink:href", "cite"];

/** Whether `url`, as this page resolves it, is one of Octo's own API or session paths. */
export function isOctoPath(url: string, base: string = document.baseURI): boolean {
  let resolved: URL;
  try {
    resolved = new URL(url, base);
  } catch {
    return false;
  }
  if (resolved.origin !== new URL(base).origin) return false;
  const path = resolved.pathname.toLowerCase();
  return ["/api", "/sessions"].some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
}

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  for (const name of URL_ATTRIBUTES) {
    const value = node.getAttribute(name);
    if (value !== null && isOctoPath(value)) node.removeAttribute(name);
  }
  // Links open in a new tab and do not hand this page to the target (a content-origin page,
  // a preview, anything else).
  if (node.tagName === "A" && node.getAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/**
 * Renders Markdown to HTML that is safe to put into the page; with `full`, long code blocks whole.
 *
 * DOMPurify sanitizes the HTML with each code block's body left out (a random placeholder stands
 * in for it), and the bodies are put in afterwards: they are highlight.js's output or escaped text,
 * which hold only text and `<span class>`, and sanitizing their thousands of spans was most of the
 * cost of a reply with a long diff.
 */
export function renderMarkdown(source: string, full = false): string {
  showFull = full;
  codeBodies = [];
  nonce = randomToken();
  try {
    const html = DOMPurify.sanitize(marked.parse(source, { async: false }), SANITIZE);
    if (codeBodies.length === 0) return html;
    const bodies = codeBodies;
    return html.replace(new RegExp(`${nonce}(\\d+)${nonce}`, "g"), (_, index: string) => bodies[Number(index)] ?? "");
  } finally {
    showFull = false;
    codeBodies = [];
  }
}

/** 32 random letters and digits: a placeholder's delimiter that no reply can know in advance. */
function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `md${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * The first use of marked, DOMPurify and each highlight.js language compiles their regular
 * expressions and code; these steps do it ahead, each small, for the caller to run in tasks of
 * their own (Markdown.tsx), so that the first render of a long conversation does not pay it.
 */
export const warmUpSteps: (() => void)[] = [
  () => marked.parse("A **reply** with `code`, a [link](https://example.org), _emphasis_ and a list:\n\n- one\n- two\n\n> quoted\n", { async: false }),
  () => marked.parse("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n1. first\n\n    indented\n\n```\nplain\n```\n", { async: false }),
  () => DOMPurify.sanitize('<p>A <a href="https://example.org">link</a> <strong>and</strong> <code>code</code></p><ul><li>x</li></ul>', SANITIZE),
  ...["diff", "bash", "typescript", "json", "python", "rust"].map((language) => () => {
    hljs.highlight("x = 1", { language, ignoreIllegals: true });
  }),
];

/** The code of `source`'s code blocks, in order (what a clipped block's copy button copies). */
export function codeBlocks(source: string): string[] {
  const blocks: string[] = [];
  marked.walkTokens(marked.lexer(source), (token) => {
    if (token.type === "code") blocks.push(token.text);
  });
  return blocks;
}
