// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { CODE_LINES, codeBlocks, isOctoPath, renderMarkdown } from "./markdown";

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

  it("removes forms, inputs, buttons, styles and links into Octo's own API and sessions", () => {
    const reply = [
      '<form action="/api/auth/login" method="post"><input name="username"><input type="password" name="password"><button>Sign in again</button></form>',
      "",
      "<style>body { display: none }</style>",
      "",
      '<p style="position: fixed; inset: 0">Session expired</p> <span style="color: red">red</span>',
      "",
      "[all users](/api/admin/users) and [files](/sessions/s1/files/api/download?path=r.html) and <a href=\"//" + location.host + '/API/me">me</a>',
      "",
      '<img src="/api/auth/logout"> <img src="/sessions/s1/../api/me">',
      "",
      "[docs](https://example.org/api/x) and [preview](https://p3000-s1.content.localhost:8443/)",
      "",
      "```sh\nls\n```",
    ].join("\n");
    const html = renderMarkdown(reply);
    const root = dom(html);
    for (const tag of ["form", "input", "button:not(.md-code-copy)", "style", "[style]"]) {
      expect(root.querySelector(tag), tag).toBeNull();
    }
    expect(html).not.toMatch(/password|display: none|position: fixed|\/api\/admin\/users|\/api\/auth|\/sessions\/s1/i);
    expect(root.textContent).toContain("Session expired");
    expect(root.textContent).toContain("all users");
    const hrefs = [...root.querySelectorAll("a")].map((a) => a.getAttribute("href"));
    expect(hrefs).toEqual([null, null, null, "https://example.org/api/x", "https://p3000-s1.content.localhost:8443/"]);
    expect([...root.querySelectorAll("img")].map((img) => img.getAttribute("src"))).toEqual([null, null]);
    // A content-origin link opens in a new tab with noopener.
    const preview = [...root.querySelectorAll("a")].find((a) => a.textContent === "preview");
    expect(preview?.getAttribute("target")).toBe("_blank");
    expect(preview?.getAttribute("rel")).toBe("noopener noreferrer");
    // The code block's own copy button stays.
    expect(root.querySelectorAll("pre button.md-code-copy")).toHaveLength(1);
  });

  it("keeps code inert though code blocks join the HTML after it is sanitized", () => {
    const attack = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 1">';
    const root = dom(renderMarkdown(`\`\`\`html\n${attack}\n\`\`\`\n\n\`\`\`\n${attack}\n\`\`\`\n\nText with ${attack}`));
    expect(root.querySelector("script")).toBeNull();
    expect(root.querySelector("img")?.getAttribute("onerror") ?? null).toBeNull();
    const codes = [...root.querySelectorAll("pre code")];
    expect(codes.map((code) => code.textContent)).toEqual([attack, attack]);
    expect(codes[0].querySelector("span.hljs-tag")).not.toBeNull(); // highlighted
    expect([...codes[0].querySelectorAll("*")].every((e) => e.tagName === "SPAN")).toBe(true);
  });

  it("renders an unfinished reply (a code fence still open) without losing text", () => {
    const root = dom(renderMarkdown("Check it with:\n\n```sh\ncat ~/agent"));
    expect(root.textContent).toContain("Check it with:");
    expect(root.querySelector("pre code")?.textContent).toBe("cat ~/agent");
  });

  it("shows a long code block's first lines and its length until asked, and all of it with `full`", () => {
    const lines = Array.from({ length: 2000 }, (_, i) => `${i % 2 ? "+" : "-"} value_${i} = ${i};`);
    const source = `The diff:\n\n\`\`\`diff\n${lines.join("\n")}\n\`\`\`\n\nAnd a short one:\n\n\`\`\`sh\nls\n\`\`\`\n`;
    const clipped = dom(renderMarkdown(source));
    const [long, short] = [...clipped.querySelectorAll("pre.md-code")];
    expect(long.classList.contains("md-code-clipped")).toBe(true);
    expect(long.querySelector("code")!.textContent!.split("\n")).toEqual(lines.slice(0, CODE_LINES));
    const more = long.nextElementSibling!;
    expect(more.getAttribute("data-testid")).toBe("chat-output-more");
    expect(more.textContent).toBe(`⋯ showing ${CODE_LINES} of 2,000 lines; show all`);
    expect(short.classList.contains("md-code-clipped")).toBe(false);
    expect(short.querySelector("code")!.textContent).toBe("ls");
    const full = dom(renderMarkdown(source, true));
    expect(full.querySelector("pre code")!.textContent!.split("\n")).toEqual(lines);
    expect(full.querySelector(".md-code-more")).toBeNull();
    // The copy button of a clipped block copies all of it.
    expect(codeBlocks(source)).toEqual([lines.join("\n"), "ls"]);
  });

  it("does not clip a block of exactly the limit", () => {
    const body = Array.from({ length: CODE_LINES }, (_, i) => `line ${i}`).join("\n");
    const root = dom(renderMarkdown(`\`\`\`\n${body}\n\`\`\``));
    expect(root.querySelector(".md-code-more")).toBeNull();
    expect(root.querySelector("code")!.textContent).toBe(body);
    const longer = dom(renderMarkdown(`\`\`\`\n${body}\nline ${CODE_LINES}\n\`\`\``));
    expect(longer.querySelector(".md-code-more")?.textContent).toBe(`⋯ showing ${CODE_LINES} of ${CODE_LINES + 1} lines; show all`);
  });
});

describe("isOctoPath", () => {
  it("knows Octo's own API and session paths however they are written", () => {
    const base = "https://octo.example/w/s1";
    const check = (url: string) => isOctoPath(url, base);
    for (const own of ["/api/me", "/api", "../api/me", "/sessions/s1/files/x", "/w/../api/me", "/%2e%2e/api/me", "https://octo.example/Sessions/x", "//octo.example/api/me"]) {
      expect(check(own), own).toBe(true);
    }
    for (const other of ["/apis", "/w/s1", "https://other.example/api/me", "https://p3000-s1.content.octo.example/api/x", "mailto:a@b", "#api", "http://octo.example/api/me"]) {
      expect(check(other), other).toBe(false);
    }
  });
});
