// End-to-end test of the `serve` web app in a real browser: headless Chromium (Debian's
// /usr/bin/chromium, or $CHROMIUM) driven by playwright-core. Starts the server binary on a
// free loopback port, uploads two smear images through the page's file input, waits for both
// pictures with their boxes and the count tables, downloads the CSV and checks it, and checks
// that the page requested nothing from anywhere but the local server.
//
//   node tests/browser/serve.test.mjs SERVE_BINARY IMAGE1 IMAGE2 [OUT_DIR]
//
// Exits 0 on success; prints why and exits 1 otherwise. OUT_DIR (default target/browser)
// receives a screenshot and the downloaded CSV.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { readFileSync, mkdirSync, existsSync } from "node:fs";
import { basename, join } from "node:path";
import { createInterface } from "node:readline";

const [serveBin, img1, img2, outDir = "target/browser"] = process.argv.slice(2);
if (!serveBin || !img1 || !img2) {
  console.error("usage: node serve.test.mjs SERVE_BINARY IMAGE1 IMAGE2 [OUT_DIR]");
  process.exit(2);
}
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
for (const p of [serveBin, img1, img2, browserPath]) {
  if (!existsSync(p)) {
    console.error(`error: ${p} does not exist`);
    process.exit(1);
  }
}
mkdirSync(outDir, { recursive: true });

function fail(msg) {
  throw new Error(msg);
}

const server = spawn(serveBin, ["--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
let browser;
try {
  const url = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: server.stdout });
    lines.once("line", l => {
      const m = /^serving on (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(l.trim());
      m ? resolve(m[1]) : reject(new Error(`unexpected first line: ${l}`));
    });
    server.once("exit", c => reject(new Error(`serve exited with ${c}`)));
  });
  console.log(`server: ${url}`);

  browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--disable-background-networking", "--disable-component-update", "--no-first-run",
      "--disable-default-apps", "--disable-sync", "--metrics-recording-only"],
  });
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const foreign = [];
  page.on("request", r => { if (!r.url().startsWith(url) && !r.url().startsWith("blob:")) foreign.push(r.url()); });
  const consoleErrors = [];
  page.on("pageerror", e => consoleErrors.push(String(e)));

  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("model").textContent.includes("RBC"));
  await page.setInputFiles("#files", [img1, img2]);
  // Both results drawn (a canvas per image) with their count tables.
  await page.waitForFunction(() => document.querySelectorAll(".result canvas").length === 2,
    null, { timeout: 300_000 });
  const cards = await page.$$eval(".result", cs => cs.map(c => ({
    name: c.getAttribute("data-name"),
    state: c.getAttribute("data-state"),
    boxes: Number(c.querySelector("canvas").getAttribute("data-boxes")),
    rbc: Number(c.querySelector('tr[data-class="RBC"] td:nth-child(2)').textContent),
  })));
  console.log("results:", JSON.stringify(cards));
  if (cards.length !== 2) fail(`${cards.length} results, expected 2`);
  for (const c of cards) {
    if (c.state !== "done") fail(`${c.name}: state ${c.state}`);
    if (!(c.boxes > 0)) fail(`${c.name}: no boxes drawn`);
    if (!(c.rbc > 0)) fail(`${c.name}: no red cells counted`);
  }
  const names = cards.map(c => c.name).sort();
  if (names.join() !== [basename(img1), basename(img2)].sort().join()) fail(`names ${names}`);
  // The total table sums the two images.
  const totalRbc = Number(await page.textContent('#total tr[data-class="RBC"] td:nth-child(2)'));
  if (totalRbc !== cards[0].rbc + cards[1].rbc) fail(`total RBC ${totalRbc}`);
  await page.screenshot({ path: join(outDir, "serve.png"), fullPage: true });

  // The CSV download: a row per image and class, then the totals.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv")]);
  const csvPath = join(outDir, "counts.csv");
  await download.saveAs(csvPath);
  const rows = readFileSync(csvPath, "utf8").trim().split("\n");
  if (rows[0] !== "image,class,count,percent") fail(`CSV header ${rows[0]}`);
  if (rows.length !== 1 + 3 * 3) fail(`CSV has ${rows.length} lines, expected 10`);
  const allRbc = rows.find(r => r.startsWith("ALL,RBC,"));
  if (!allRbc || Number(allRbc.split(",")[2]) !== totalRbc) fail(`CSV total ${allRbc}`);
  for (const c of cards) {
    const row = rows.find(r => r.startsWith(`${c.name},RBC,`));
    if (!row || Number(row.split(",")[2]) !== c.rbc) fail(`CSV row for ${c.name}: ${row}`);
  }
  if (foreign.length) fail(`the page requested other hosts: ${foreign.join(", ")}`);
  if (consoleErrors.length) fail(`page errors: ${consoleErrors.join("; ")}`);
  console.log(`browser test passed: 2 images, ${cards[0].boxes + cards[1].boxes} boxes, CSV ${rows.length} lines`);
} catch (e) {
  console.error(`browser test FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  server.kill();
}
