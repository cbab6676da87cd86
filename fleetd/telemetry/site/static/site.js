// The site page's script: keeps the header, the rig table and the curtailment section live from
// /api/v1/site, sorts, filters and pages the table over every rig, and draws the history with
// uPlot. Plain ES2020, no build step. It formats figures as fleetd/telemetry/site/page.py does,
// so the server's first render and every refresh read alike.
"use strict";

(() => {
  const COLUMNS = ["name", "state", "hold", "model", "ip", "hashrate", "ci", "reported", "nominal", "rejects",
    "watts", "nameplate", "efficiency", "temperature", "margin", "breakeven"];
  const TEXT_KEYS = new Set(["name", "state"]);
  const RANGES = { "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };
  const HISTORY_EVERY_MS = 60000; // the journal's points are minutes: a refresh a minute is enough
  const EVENTS_LIMIT = 500;
  const DASH = "–";

  const $ = (selector) => document.querySelector(selector);
  const refreshMs = Math.max(1, Number(document.body.dataset.refresh) || 5) * 1000;
  const journal = document.body.dataset.journal === "on";

  let site = null; // the last /api/v1/site answer
  let haystacks = []; // per rig: name, model and address in lower case, for the filter
  let order = []; // rig indices after filtering and sorting
  let sortKey = "name";
  let sortDir = 1;
  let page = 0;
  let events = []; // curtailment events in the charts' range, oldest first
  let detail = null; // /api/v1/rigs/{rig} of the rig whose detail is open
  const charts = new Map(); // figure id -> uPlot

  // -- formatting (page.py's filters) ----------------------------------------------------
  const fixed = (v, digits = 1, unit = "") => v == null ? DASH
    : v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) + unit;
  const usd = (v) => {
    if (v == null) return DASH;
    const text = "$" + fixed(Math.abs(v), 2);
    return v < 0 && text !== "$0.00" ? "−" + text : text;
  };
  const price = (v) => v == null ? DASH : "$" + v.toFixed(3) + "/kWh";
  const utc = (s) => new Date(s * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  const iso = (s) => new Date(s * 1000).toISOString().slice(0, 19) + "Z";
  const hashrateCell = (r) => r.hashrate == null ? DASH
    : fixed(r.hashrate, 2) + " (" + (r.ci == null ? "immature" : "±" + r.ci.toFixed(0) + " %") + ")";

  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value != null) node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  };
  const setStatus = (text) => { $("#status").textContent = text; };

  // -- fetching --------------------------------------------------------------------------
  async function getJson(url, options) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, ...options });
    let body = null;
    try { body = await response.json(); } catch (_) { /* an empty or non-JSON body */ }
    if (!response.ok) {
      throw new Error((body && body.error) || response.status + " " + response.statusText);
    }
    return body;
  }

  async function refresh() {
    try {
      site = await getJson("/api/v1/site");
      haystacks = site.rigs.name.map((name, i) =>
        [name, site.rigs.model[i] || "", site.rigs.ip[i] || ""].join("\n").toLowerCase());
      renderHeader();
      renderTable();
      renderCurtailment();
      renderDetailFigures();
      rigApi();
      if (!journal) renderEvents(site.curtailment ? site.curtailment.recent.map(
        ([time, rig, kind, reason]) => ({ time, rig, kind, reason })) : []);
      setStatus("");
    } catch (error) {
      setStatus("Refresh failed (" + error.message + "); trying again.");
    }
  }

  // -- the fleet header ------------------------------------------------------------------
  function renderHeader() {
    const f = site.fleet;
    const updated = $("#updated");
    updated.dataset.updated = String(Math.floor(site.time));
    updated.setAttribute("datetime", iso(site.time));
    updated.textContent = utc(site.time);
    $("#fleet-counts").textContent = `${f.rigs} rigs: ${f.up} up, ${f.down} down, ${f.curtailed} curtailed, ${f.hot} hot.`;
    const text = {
      hashrate: fixed(f.hashrate, 1, " TH/s"),
      power: fixed(f.power, 1, " kW"),
      efficiency: fixed(f.efficiency, 1, " J/TH"),
      hashprice: usd(f.hashprice) + "/PH/day",
      revenue: usd(f.revenue) + "/day",
      cost: usd(f.cost) + "/day",
      margin: usd(f.margin) + "/day",
      breakeven: price(f.breakeven),
      adjustment: f.adjustment == null ? DASH
        : (f.adjustment.percent >= 0 ? "+" : "") + f.adjustment.percent.toFixed(2) + " % in "
          + f.adjustment.blocks + " blocks",
    };
    for (const [key, value] of Object.entries(text)) {
      $(`#fleet [data-field="${key}"] dd`).textContent = value;
    }
    const sources = f.sources.flatMap(([, health, words], i) =>
      [i ? " · " : "", el("span", { class: "source source-" + health }, words)]);
    $('#fleet [data-field="sources"] dd').replaceChildren(...sources);
  }

  // -- the rig table ---------------------------------------------------------------------
  function row(i) {
    const r = {};
    for (const key of COLUMNS) r[key] = site.rigs[key][i];
    return r;
  }

  function compare(key, dir) {
    const column = site.rigs[key];
    return (a, b) => {
      const x = column[a], y = column[b];
      if (x == null || y == null) return x == null ? (y == null ? a - b : 1) : -1; // unknown last
      if (x < y) return -dir;
      if (x > y) return dir;
      return a - b; // stable: by name, the answer's order
    };
  }

  function select() {
    const words = $("#rig-filter").value.trim().toLowerCase();
    const state = $("#state-filter").value;
    order = [];
    for (let i = 0; i < haystacks.length; i++) {
      if ((state === "all" || site.rigs.state[i] === state) && (!words || haystacks[i].includes(words))) order.push(i);
    }
    order.sort(compare(sortKey, sortDir));
  }

  function cell(value, ...children) {
    return el("td", { "data-value": value == null ? "" : String(value) }, ...children);
  }

  function tableRow(i) {
    const r = row(i);
    const state = [el("span", { class: "state state-" + r.state }, r.state)];
    if (r.hold) state.push(" ", el("small", {}, r.hold));
    const watts = r.watts == null ? DASH : fixed(r.watts, 0) + (r.nameplate ? "*" : "");
    return el("tr", { "data-rig": r.name, "data-state": r.state },
      cell(r.name, el("a", { href: "#rig=" + encodeURIComponent(r.name) }, r.name)),
      cell(r.state, ...state),
      cell(r.hashrate, hashrateCell(r)),
      cell(r.reported, fixed(r.reported, 2)),
      cell(r.nominal, fixed(r.nominal, 2)),
      cell(r.rejects, fixed(r.rejects, 2, " %")),
      cell(r.watts, watts),
      cell(r.efficiency, fixed(r.efficiency, 1)),
      cell(r.temperature, fixed(r.temperature, 1)),
      cell(r.margin, usd(r.margin)),
      cell(r.breakeven, price(r.breakeven)));
  }

  function renderTable() {
    if (!site) return;
    select();
    const size = Number($("#page-size").value);
    const pages = Math.max(1, Math.ceil(order.length / size));
    page = Math.min(page, pages - 1);
    const shown = order.slice(page * size, (page + 1) * size);
    $("#rigs tbody").replaceChildren(...shown.map(tableRow));
    $("#rig-count").textContent = `${order.length} of ${site.rigs.name.length} rigs`;
    $("#page-info").textContent = `page ${page + 1} of ${pages}`;
    $("#page-prev").disabled = page === 0;
    $("#page-next").disabled = page >= pages - 1;
    for (const th of document.querySelectorAll("#rigs thead th")) {
      const key = th.querySelector("button").dataset.sort;
      th.setAttribute("aria-sort", key !== sortKey ? "none" : sortDir > 0 ? "ascending" : "descending");
    }
  }

  function wireTable() {
    for (const button of document.querySelectorAll("#rigs thead button[data-sort]")) {
      button.addEventListener("click", () => {
        const key = button.dataset.sort;
        // a figure sorts the largest first, a name from A
        sortDir = key === sortKey ? -sortDir : (TEXT_KEYS.has(key) ? 1 : -1);
        sortKey = key;
        page = 0;
        renderTable();
      });
    }
    const again = () => { page = 0; renderTable(); };
    $("#rig-filter").addEventListener("input", again);
    $("#state-filter").addEventListener("change", again);
    $("#page-size").addEventListener("change", again);
    $("#page-prev").addEventListener("click", () => { page = Math.max(0, page - 1); renderTable(); });
    $("#page-next").addEventListener("click", () => { page += 1; renderTable(); });
  }

  // -- curtailment -----------------------------------------------------------------------
  function renderCurtailment() {
    const c = site.curtailment;
    if (!c || !$("#curtailment-mode")) return;
    $("#curtailment-mode").textContent = c.mode;
    $("#curtailment-target").textContent = fixed(c.target_kw, 1, " kW");
    $("#curtailment-shed").textContent = fixed(c.shed_kw, 1, " kW");
    $("#curtailment-demand").textContent = c.demand ? `${fixed(c.demand.kw, 1, " kW")} until ${utc(c.demand.until)}` : "none";
    const held = c.held.map(([name, state, reason, since, shed, target]) => {
      const limit = target == null ? "" : `, held to ${fixed(target, 0, " W")}`;
      const item = el("li", {}, el("strong", {}, name),
        ` ${state} (${reason}) since ${utc(since)}${limit}, shedding ${fixed(shed / 1000, 2, " kW")}`);
      if (c.controls) {
        item.append(" ", el("button", { type: "button", "data-release": name, "aria-label": "Release " + name }, "Release"));
      }
      return item;
    });
    $("#curtailment-held").replaceChildren(...(held.length ? held : [el("li", {}, "none")]));
    $("#curtailment-advice").textContent = c.advice.map(([name, reason]) => `${name} (${reason})`).join(", ") || "every rig on";
    const plan = c.plan ? `To shed ${fixed(c.plan.target_kw, 1, " kW")}: ${c.plan.rigs.join(", ") || "nothing"} `
      + `(${fixed(c.plan.kw, 1, " kW")}, losing ${usd(c.plan.lost_revenue)}/day of revenue).`
      : "No shedding plan: no target or no prices.";
    const losing = c.losing.rigs.length
      ? ` (${c.losing.rigs.join(", ")}${c.losing.count > c.losing.rigs.length ? ", …" : ""})` : "";
    $("#curtailment-plan").textContent = `${plan} Losing money now: ${c.losing.count}${losing}.`;
  }

  async function control(method, url, body) {
    const result = $("#demand-result");
    try {
      const answer = await getJson(url, {
        method,
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: body == null ? undefined : JSON.stringify(body),
      });
      result.textContent = method === "POST"
        ? `Requested: shed ${fixed(answer.kw, 1, " kW")} until ${utc(answer.until)}${answer.acting ? "" : " (advise mode: nothing is switched)"}.`
        : "Released.";
    } catch (error) {
      result.textContent = "Refused: " + error.message;
    }
    refresh();
  }

  function wireControls() {
    const form = $("#demand-form");
    if (!form) return;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const kw = Number(form.elements.kw.value);
      const minutes = Number(form.elements.duration_minutes.value);
      control("POST", "/api/v1/curtailment", { kw, duration_seconds: minutes * 60 });
    });
    $("#demand-release").addEventListener("click", () => control("DELETE", "/api/v1/curtailment"));
    $("#curtailment").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-release]");
      if (button) control("DELETE", "/api/v1/curtailment/rigs/" + encodeURIComponent(button.dataset.release));
    });
  }

  // -- charts ----------------------------------------------------------------------------
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function empty(figure, text) {
    charts.get(figure.id)?.destroy();
    charts.delete(figure.id);
    figure.removeAttribute("aria-label");
    const caption = figure.querySelector("figcaption");
    figure.replaceChildren(caption, el("p", { class: "empty" }, text));
  }

  // curtailment actions as vertical lines across the plot
  const markers = () => ({
    hooks: {
      draw: [(u) => {
        const { ctx, bbox } = u;
        ctx.save();
        ctx.strokeStyle = css("--marker");
        ctx.lineWidth = Math.max(1, devicePixelRatio);
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        for (const e of events) {
          const x = Math.round(u.valToPos(e.time, "x", true));
          if (x < bbox.left || x > bbox.left + bbox.width) continue;
          ctx.beginPath();
          ctx.moveTo(x, bbox.top);
          ctx.lineTo(x, bbox.top + bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      }],
    },
  });

  function draw(figure, times, values, label, unit, digits) {
    const known = values.filter((v) => v != null);
    if (!known.length) {
      empty(figure, "No figures in this range yet.");
      return;
    }
    const caption = figure.querySelector("figcaption");
    const summary = `${caption.textContent}: latest ${fixed(known[known.length - 1], digits, " " + unit)}, `
      + `lowest ${fixed(Math.min(...known), digits)}, highest ${fixed(Math.max(...known), digits)}`
      + `; ${events.length} curtailment action${events.length === 1 ? "" : "s"} marked.`;
    figure.setAttribute("aria-label", summary);
    const axis = { stroke: css("--muted"), grid: { stroke: css("--grid") }, ticks: { stroke: css("--grid") } };
    const options = {
      width: Math.max(240, figure.clientWidth - 16),
      height: 180,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [axis, { ...axis, size: 60 }],
      series: [{}, { label: `${label} (${unit})`, stroke: css("--series"), width: 2, fill: null,
        value: (u, v) => fixed(v, digits) }],
      plugins: [markers()],
    };
    charts.get(figure.id)?.destroy();
    figure.querySelector(".empty")?.remove();
    charts.set(figure.id, new uPlot(options, [times, values], figure));
  }

  // The buckets before the journal's first record of the fleet (or the rig) in the range are
  // gaps, not zeros: a young site's minutes would otherwise be squeezed against a flat line.
  function series(points, value) {
    const first = points.findIndex((p) => p.rigs > 0 || p.accepted + p.rejected > 0 || p.watts != null
      || p.reported_hashrate != null);
    return points.map((p, i) => (first < 0 || i < first ? null : value(p)));
  }

  function rangeSeconds() {
    return RANGES[$("#history-range").value] || RANGES["6h"];
  }

  function renderEvents(list) {
    events = list;
    const items = list.slice().reverse().map((e) => el("li", {},
      el("time", { datetime: iso(e.time) }, utc(e.time)), " ", el("strong", {}, e.rig), ` ${e.kind} (${e.reason})`));
    $("#curtailment-events").replaceChildren(...(items.length ? items : [el("li", {}, "none in this range")]));
  }

  async function drawHistory() {
    if (!journal || typeof uPlot === "undefined") return;
    const to = Math.ceil(site ? site.time : Date.now() / 1000); // the server's clock, as the journal's
    const from = to - rangeSeconds();
    const figures = ["#chart-fleet-hashrate", "#chart-fleet-power", "#chart-fleet-margin"].map((s) => $(s));
    try {
      const [fleet, trail] = await Promise.all([
        getJson(`/api/v1/fleet/history?from=${from}&to=${to}`),
        getJson(`/api/v1/curtailment/events?from=${from}&to=${to}&limit=${EVENTS_LIMIT}`),
      ]);
      renderEvents(trail.events);
      const times = fleet.points.map((p) => p.time);
      draw(figures[0], times, series(fleet.points, (p) => p.hashrate / 1e12), "hash rate", "TH/s", 1);
      draw(figures[1], times, series(fleet.points, (p) => p.watts == null ? null : p.watts / 1000), "power", "kW", 2);
      draw(figures[2], times, series(fleet.points, (p) => p.margin_usd * 86400 / fleet.step), "margin", "USD/day", 2);
    } catch (error) {
      for (const figure of figures) empty(figure, "No history: " + error.message);
    }
    await rigHistory();
  }

  // -- a rig's detail ----------------------------------------------------------------------
  function openedRig() {
    const match = /^#rig=(.*)$/.exec(location.hash);
    if (!match) return null;
    try { return decodeURIComponent(match[1]); } catch (_) { return null; }
  }

  function renderDetailFigures() {
    const name = openedRig();
    const section = $("#rig-detail");
    if (name == null) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    $("#rig-detail-title").textContent = name;
    const i = site ? site.rigs.name.indexOf(name) : -1;
    if (i < 0) {
      $("#rig-detail-figures").replaceChildren(el("div", {}, el("dt", {}, "State"), el("dd", {}, site ? "not in the fleet now" : DASH)));
      return;
    }
    const r = row(i);
    const figures = [
      ["State", r.state + (r.hold ? ` (${r.hold})` : "")], ["Model", r.model || DASH], ["Address", r.ip || DASH],
      ["Pool 5 m", hashrateCell(r) + " TH/s"], ["Reported", fixed(r.reported, 2, " TH/s")],
      ["Nominal", fixed(r.nominal, 2, " TH/s")], ["Rejects", fixed(r.rejects, 2, " %")],
      ["Power", r.watts == null ? DASH : fixed(r.watts, 0, " W") + (r.nameplate ? " (nameplate estimate)" : "")],
      ["Efficiency", fixed(r.efficiency, 1, " J/TH")], ["Hottest", fixed(r.temperature, 1, " °C")],
      ["Margin", usd(r.margin) + "/day"], ["Breakeven", price(r.breakeven)],
    ];
    if (detail && detail.rig === name) {
      const d = detail;
      const fans = Object.values(d.fans || {});
      figures.push(["Firmware", d.firmware || DASH], ["Connections", String(d.connections)],
        ["Last share", d.last_share == null ? DASH : utc(d.last_share)],
        ["Uptime", d.uptime == null ? DASH : fixed(d.uptime / 3600, 1, " h")],
        ["Fans", fans.length ? fans.map((rpm) => fixed(rpm, 0)).join(", ") + " rpm" : DASH],
        ["Errors", (d.errors || []).join("; ") || "none"]);
    }
    $("#rig-detail-figures").replaceChildren(...figures.map(([label, value]) =>
      el("div", {}, el("dt", {}, label), el("dd", {}, value))));
  }

  // what only the rig's own API answer has (firmware, fans, uptime, errors), while it is open
  async function rigApi() {
    const name = openedRig();
    if (name == null) return;
    try {
      detail = await getJson(`/api/v1/rigs/${encodeURIComponent(name)}`);
    } catch (_) {
      detail = null; // gone from the registry: the figures say so
    }
    if (openedRig() === name) renderDetailFigures();
  }

  async function rigHistory() {
    const name = openedRig();
    const figures = [$("#chart-rig-hashrate"), $("#chart-rig-power")];
    if (name == null) return;
    if (!journal) {
      for (const figure of figures) empty(figure, "The journal is off: no history to draw.");
      return;
    }
    if (typeof uPlot === "undefined") return;
    const to = Math.ceil(site ? site.time : Date.now() / 1000); // the server's clock, as the journal's
    const from = to - rangeSeconds();
    try {
      const answer = await getJson(`/api/v1/rigs/${encodeURIComponent(name)}/history?from=${from}&to=${to}`);
      const times = answer.points.map((p) => p.time);
      draw(figures[0], times, series(answer.points, (p) => p.hashrate / 1e12), "hash rate", "TH/s", 2);
      draw(figures[1], times, series(answer.points, (p) => p.watts), "power", "W", 0);
    } catch (error) {
      for (const figure of figures) empty(figure, "No history: " + error.message);
    }
  }

  function showRig() {
    renderDetailFigures();
    if (openedRig() != null) {
      rigApi();
      rigHistory();
      $("#rig-detail-title").focus();
    }
  }

  function wireDetail() {
    window.addEventListener("hashchange", showRig);
    $("#rig-detail-close").addEventListener("click", () => {
      window.history.replaceState(null, "", location.pathname + location.search); // no jump to the top
      $("#rig-detail").hidden = true;
    });
  }

  // -- start -----------------------------------------------------------------------------
  wireTable();
  wireControls();
  wireDetail();
  $("#history-range").addEventListener("change", drawHistory);
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      for (const [id, chart] of charts) chart.setSize({ width: Math.max(240, $("#" + id).clientWidth - 16), height: 180 });
    }, 150);
  });
  refresh().then(() => { showRig(); drawHistory(); });
  setInterval(refresh, refreshMs);
  setInterval(drawHistory, HISTORY_EVERY_MS);
})();
