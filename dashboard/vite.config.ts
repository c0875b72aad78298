// Builds the dashboard into dist/, which qyl embeds (rust-embed) and serves
// at /. `npm run dev` proxies the API to a running qyl (QYL_URL, default
// http://127.0.0.1:5100) so pages can be worked on with hot reload.
import { defineConfig } from 'vite';

const qyl = process.env.QYL_URL ?? 'http://127.0.0.1:5100';

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  resolve: { alias: { react: 'preact/compat', 'react-dom': 'preact/compat' } },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      '/api': { target: qyl, changeOrigin: true },
      '/v1': { target: qyl, changeOrigin: true },
    },
  },
});
