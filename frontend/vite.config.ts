// Vite build and dev server. `OCTO_DEV_BACKEND=http://127.0.0.1:8600 npm run dev` proxies `/api` and
// `/sessions` (WebSockets included) to a running octod and rewrites Origin so its same-origin check
// passes; without it the dev server serves the UI alone. `vite preview` serves the build the same way.
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";
import type { ProxyOptions } from "vite";

const backend = process.env.OCTO_DEV_BACKEND;

function proxyTo(target: string): ProxyOptions {
  return {
    target,
    changeOrigin: true,
    ws: true,
    configure(proxy) {
      // octod refuses state-changing requests whose Origin is not its own.
      proxy.on("proxyReq", (req) => {
        if (req.getHeader("origin")) req.setHeader("origin", target);
      });
      proxy.on("proxyReqWs", (req) => {
        if (req.getHeader("origin")) req.setHeader("origin", target);
      });
    },
  };
}

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    manifest: true,
    sourcemap: false,
  },
  server: {
    port: Number(process.env.PORT ?? 5171),
    strictPort: true,
    host: "127.0.0.1",
    proxy: backend ? { "/api": proxyTo(backend), "/sessions": proxyTo(backend) } : undefined,
  },
  // `npx vite preview`: the production build (dist/) with the same proxy, for checking it end to end.
  preview: {
    port: Number(process.env.PORT ?? 5171),
    strictPort: true,
    host: "127.0.0.1",
    proxy: backend ? { "/api": proxyTo(backend), "/sessions": proxyTo(backend) } : undefined,
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
  },
});
