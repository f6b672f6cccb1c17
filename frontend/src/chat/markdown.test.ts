// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { renderMarkdown } from "./markdown";

function dom(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

describe("renderMarkdown", () => {
  it("renders the stub model's reply: inline code, bold, a highlighted shell block", () => {
    const html = renderMarkdown(
      "The file is written.\n\n`agent-loop.txt` now holds **one line**. Check it with:\n\n```sh\ncat ~/agent-loop.txt\n```\n",
    );
    const root = dom(html);
    expect(root.querySelector("p")?.textContent).toBe("The file is written.");
    expect(root.querySelector("p code")?.textContent).toBe("agent-loop.txt");
    expect(root.querySelector("strong")?.textContent).toBe("one line");
    const code = root.querySelector("pre.md-code code.hljs.language-sh");
    expect(code?.textContent).toBe("cat ~/agent-loop.txt");
    expect(code?.querySelector("span[class^=hljs-]")).not.toBeNull();
    expect(root.querySelector(".md-code-lang")?.textContent).toBe("sh");
    const copy = root.querySelector("pre button.md-code-copy");
    expect(copy?.getAttribute("type")).toBe("button");
    expect(copy?.getAttribute("aria-label")).toBe("Copy the code");
  });

  it("escapes code in unknown languages and keeps GFM tables and lists", () => {
    const root = dom(renderMarkdown("```brainfuck\n<b>x</b>\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n"));
    expect(root.querySelector("pre code")?.textContent).toBe("<b>x</b>");
    expect(root.querySelector("pre code b")).toBeNull();
    expect(root.querySelectorAll("td")).toHaveLength(2);
    expect(root.querySelectorAll("li")).toHaveLength(2);
  });

  it("removes scripts, event handlers and javascript: links", () => {
    const root = dom(
      renderMarkdown(
        '<script>window.pwned = 1</script>\n\n<img src="x" onerror="window.pwned = 1">\n\n[click](javascript:alert(1)) <a href="https://example.org" onclick="x()">ok</a>',
      ),
    );
    expect(root.querySelector("script")).toBeNull();
    expect(root.querySelector("img")?.getAttribute("onerror")).toBeNull();
    for (const a of root.querySelectorAll("a")) {
      expect(a.getAttribute("href") ?? "").not.toMatch(/^javascript:/i);
      expect(a.getAttribute("onclick")).toBeNull();
    }
    const link = [...root.querySelectorAll("a")].find((a) => a.textContent === "ok");
    expect(link?.getAttribute("target")).toBe("_blank");
    expect(link?.getAttribute("rel")).toBe("noopener noreferrer");
  });

  it("renders an unfinished reply (a code fence still open) without losing text", () => {
    const root = dom(renderMarkdown("Check it with:\n\n```sh\ncat ~/agent"));
    expect(root.textContent).toContain("Check it with:");
    expect(root.querySelector("pre code")?.textContent).toBe("cat ~/agent");
  });
});
