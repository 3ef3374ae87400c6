// Opens a `spanwatch read --report` page in headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core) and checks it as a reader would see it: it loads without console errors,
// page errors or network requests (the page must be self-contained), every expected plot is
// there as an SVG with drawn content and a visible size, and a full-page screenshot is written.
// Usage: node report-check.mjs PAGE.html SCREENSHOT.png
// Prints one JSON line: {"ok", "errors", "requests", "plots": {id: {width, height, paths, texts}}}.
import { chromium } from "playwright-core";
import path from "node:path";

const [page_path, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
const requests = [];
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") errors.push(`console ${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("request", (r) => { if (!r.url().startsWith("file://")) requests.push(r.url()); });
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
  const url = "file://" + path.resolve(page_path);
  const resp = await page.goto(url, { waitUntil: "load" });
  if (!resp || !resp.ok()) errors.push(`load: ${resp && resp.status()}`);
  const plots = await page.evaluate(() => {
    const out = {};
    for (const f of document.querySelectorAll("figure[id^=plot-]")) {
      const svg = f.querySelector("svg");
      const r = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
      out[f.id] = {
        width: Math.round(r.width), height: Math.round(r.height),
        paths: svg ? svg.querySelectorAll("polyline,path,rect,circle").length : 0,
        texts: svg ? [...svg.querySelectorAll("text")].map((t) => t.textContent) : [],
      };
    }
    return out;
  });
  await page.screenshot({ path: shot, fullPage: true });
  const ok = errors.length === 0 && requests.length === 0;
  console.log(JSON.stringify({ ok, errors, requests, title: await page.title(), plots }));
} finally {
  await browser.close();
}
