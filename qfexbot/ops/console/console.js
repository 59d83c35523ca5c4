// qfexbot dashboard: renders /api/events (server-sent status documents), the journal and the
// orders; control calls send the ops token in the Authorization header (never a cookie).
"use strict";

const tokenFromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (tokenFromLink) {
  sessionStorage.setItem("qfexbot-token", tokenFromLink);
  history.replaceState(null, "", location.pathname);  // the token leaves the address bar
}
const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("qfexbot-token") || "";
tokenInput.addEventListener("change", () => sessionStorage.setItem("qfexbot-token", tokenInput.value));

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fill(id, rows, build) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.map(build));
}

function row(cells, cls, id) {
  const tr = el("tr", null, cls);
  if (id) tr.dataset.id = id;
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function when(ts) {
  return ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) : "";
}

function age(seconds) {
  return seconds === null || seconds === undefined ? "-" : `${seconds.toFixed(1)} s ago`;
}

function say(text, bad) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = bad ? "bad" : "";
}

async function control(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "Authorization": `Bearer ${tokenInput.value}`,
    },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

const runHistory = {};  // "venue/account id" -> [[seconds, equity, available]] of this run
const venueEquity = {};  // "venue/account id" -> [[seconds, equity]] from the venue's history
const venueAsked = {};

async function loadVenueEquity(venue, account) {
  // The venue's own equity history (GET /api/equity -> /user/account-equity), once a minute.
  const key = `${venue}/${account}`;
  if (venueAsked[key] && Date.now() - venueAsked[key] < 60000) return;
  venueAsked[key] = Date.now();
  const response = await fetch(`/api/equity?${new URLSearchParams({ venue, account, duration: "1d" })}`);
  if (!response.ok) return;  // the chart keeps the run's own points
  const answer = await response.json();
  venueEquity[key] = answer.points.map((p) => [Date.parse(p[0]) / 1000, Number(p[1])]);
}

function chart(points, history) {
  // The venue's equity history (grey), then this run's equity (blue) and available (orange),
  // drawn as SVG polylines on one time axis.
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const w = 240, h = 40;
  svg.setAttribute("class", "chart");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  const series = [
    ["venue", history],
    ["equity", points.map((p) => [p[0], Number(p[1])])],
    ["available", points.map((p) => [p[0], Number(p[2])])],
  ].filter(([, line]) => line.length > 1);  // a line needs two points
  const all = series.flatMap(([, line]) => line);
  if (all.length < 2) return svg;
  const times = all.map((p) => p[0]), values = all.map((p) => p[1]);
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const lo = Math.min(...values), hi = Math.max(...values);
  const x = (t) => ((t - t0) / (t1 - t0 || 1)) * (w - 2) + 1;
  const y = (v) => h - 1 - ((v - lo) / (hi - lo || 1)) * (h - 2);
  for (const [cls, line] of series) {
    const poly = document.createElementNS(ns, "polyline");
    poly.setAttribute("class", cls);
    poly.setAttribute("points", line.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "));
    svg.append(poly);
  }
  return svg;
}

let aliases = {};  // account id -> bots.toml alias, from the sessions of the last status
const named = (account) => (account ? aliases[account] || account : "-");

function renderStatus(doc) {
  aliases = Object.fromEntries(doc.sessions.map((s) => [s.account, s.alias]));
  const kill = document.getElementById("kill");
  kill.className = doc.kill_switch ? "kill on" : "kill off";
  document.getElementById("kill-state").textContent = doc.kill_switch
    ? `kill switch ENGAGED: ${doc.kill_switch_reason}` : "kill switch: off (money may move)";
  fill("sessions", doc.sessions, (s) => row([
    s.venue, s.alias, el("td", s.state, s.state === "live" ? "live" : "bad"),
    s.state_since ? when(s.state_since) : "-", s.reconnects,
    age(s.last_frame_age), s.last_error || "",
  ], `state-${s.state}`));
  fill("accounts", doc.balances, (b) => {
    loadVenueEquity(b.venue, b.account).catch(() => {});
    const key = `${b.venue}/${b.account}`;
    const points = runHistory[key] || (runHistory[key] = []);
    const last = points[points.length - 1];
    if (!last || doc.now - last[0] >= 1) points.push([doc.now, b.equity, b.available]);
    if (points.length > 3600) points.splice(0, points.length - 3600);
    const cell = el("td");
    cell.append(chart(points, venueEquity[key] || []));
    return row([b.venue, b.alias, b.equity, b.available, b.deposit, b.unrealised_pnl, cell]);
  });
  fill("positions", doc.positions, (p) => row([p.alias, p.symbol, p.size, p.average_price, p.unrealised_pnl]));
  const plugins = doc.bots.flatMap((bot) => bot.plugins.map((p) => ({ bot: bot.name, ...p })));
  fill("plugins", plugins, (p) => row([
    p.bot, p.name, `${p.depth ?? ""}`, p.events_handled, p.failures,
    el("td", p.last_error ? `${when(p.last_error_at)} ${p.last_error}` : "", "detail"),
    p.disabled ? `yes: ${p.disabled_reason}` : "no", enableButton(p),
  ], p.disabled ? "disabled" : "", `${p.bot}/${p.name}`));
  document.getElementById("live").textContent =
    `live: pid ${doc.pid}, ${doc.healthy ? "healthy" : doc.problems.join("; ")}, updated ${when(doc.now)}`;
}

function enableButton(plugin) {
  // A disabled plugin gets the events published from now on; those it missed are not replayed.
  const cell = el("td");
  if (!plugin.disabled) return cell;
  const button = el("button", "Re-enable", "enable");
  button.type = "button";
  button.addEventListener("click", async () => {
    const name = `${plugin.bot}/${plugin.name}`;
    if (!confirm(`Re-enable plugin ${name}? It gets the events from now on (those published while it was disabled are lost).`)) return;
    try {
      await control("/api/plugins/enable", { bot: plugin.bot, plugin: plugin.name, reason: "re-enabled from the dashboard" });
      say(`plugin ${name} re-enabled`);
    } catch (error) { say(`re-enable refused: ${error.message}`, true); }
  });
  cell.append(button);
  return cell;
}

function resolveButton(entry) {
  const cell = el("td");
  if (!entry.in_doubt || entry.state !== "unknown") return cell;
  for (const [label, applied, cls] of [["landed", true, "applied"], ["did not land", false, "not-applied"]]) {
    const button = el("button", label, cls);
    button.type = "button";
    button.addEventListener("click", async () => {
      const verdict = applied ? "LANDED (mark done)" : "did NOT land (mark failed, allow a new transfer)";
      if (!confirm(`Transfer ${entry.id} ${entry.amount}: you checked the venue and it ${verdict}?`)) return;
      try {
        await control("/api/resolve", { id: entry.id, applied });
        say(`transfer ${entry.id} resolved`);
      } catch (error) { say(`resolve refused: ${error.message}`, true); }
      refreshTables();
    });
    cell.append(button);
  }
  return cell;
}

async function refreshTables() {
  const query = new URLSearchParams({
    state: document.getElementById("f-state").value,
    bot: document.getElementById("f-bot").value,
    account: document.getElementById("f-account").value,
  });
  const journal = await (await fetch(`/api/journal?${query}`)).json();
  fill("journal", journal.entries.filter((e) => e.kind !== "order"), (e) => row([
    when(e.created_at), e.id, e.kind, e.state, `${e.bot}/${e.plugin}`,
    `${named(e.src)} → ${named(e.dst)}`, e.amount ?? "", resolveButton(e), el("td", e.detail, "detail"),
  ], `${e.in_doubt ? "in-doubt " : ""}kind-${e.kind} state-${e.state}`, e.id));
  const orders = await (await fetch("/api/orders")).json();
  fill("orders", orders.entries, (o) => row([
    when(o.created_at), named(o.src), `${o.side || ""} ${o.quantity || ""} ${o.symbol || ""} @ ${o.price || "market"}`,
    o.state, o.client_order_id || "", el("td", o.detail, "detail"),
  ]));
}

document.getElementById("pause-btn").addEventListener("click", async () => {
  const reason = document.getElementById("pause-reason").value.trim() || "paused by the operator";
  try { await control("/api/pause", { reason }); say("paused"); } catch (error) { say(`pause refused: ${error.message}`, true); }
});
document.getElementById("resume-btn").addEventListener("click", async () => {
  try { await control("/api/resume", {}); say("resumed"); } catch (error) { say(`resume refused: ${error.message}`, true); }
});
document.getElementById("journal-filter").addEventListener("input", refreshTables);
document.getElementById("journal-filter").addEventListener("submit", (event) => event.preventDefault());

async function loadRunHistory() {
  // The points the process kept before this page opened; live ones are added from the events.
  const doc = await (await fetch("/api/status?history=1")).json();
  for (const b of doc.balances) {
    const key = `${b.venue}/${b.account}`;
    runHistory[key] = b.history.concat(runHistory[key] || []);
  }
}

loadRunHistory().catch((error) => say(`history: ${error.message}`, true));
const events = new EventSource("/api/events");
events.onmessage = (message) => {
  renderStatus(JSON.parse(message.data));
  refreshTables().catch((error) => say(`journal: ${error.message}`, true));
};
events.onerror = () => { document.getElementById("live").textContent = "disconnected: retrying…"; };
