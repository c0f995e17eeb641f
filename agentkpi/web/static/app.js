/* agentkpi dashboard: fetch the page's JSON twin, render it, poll it.
 *
 * Every page is the same shell (see agentkpi/web/app.py); <body data-api> names
 * the JSON route. The page's query string (from, to, grain, tz, filters, sort)
 * is passed to the API unchanged, so a URL is a shareable view.
 */
(function () {
  "use strict";
  var body = document.body;
  var page = body.dataset.page, api = body.dataset.api;
  var poll = parseFloat(body.dataset.poll || "10") * 1000;
  var params = new URLSearchParams(location.search);
  var last = null, lastText = "", timer = null, renders = 0;
  var $ = function (id) { return document.getElementById(id); };

  function h(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs.hasOwnProperty(k)) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function hour(s) { return s ? s.slice(0, 13) : ""; }           // YYYY-MM-DDTHH
  function toInput(s) { return s ? s.slice(0, 16) : ""; }         // datetime-local value
  function fromInput(v) { return v ? v.slice(0, 13) : ""; }
  function query(extra) {
    var p = new URLSearchParams(params);
    if (extra) for (var k in extra) { if (extra[k] === null) p.delete(k); else p.set(k, extra[k]); }
    var s = p.toString();
    return s ? "?" + s : "";
  }
  function unitOf(d, k) { return d.kpis && d.kpis[k] ? d.kpis[k].unit : ""; }
  // A KPI's human label from the catalogue; the raw name stays on hover (and in the JSON).
  // Key columns that are not KPIs (dimensions, audit columns) get a label too.
  var NAMES = {tool: "Tool", model: "Model", agent: "Agent", user: "User", project: "Project",
               machine: "Machine", mcp_server: "MCP server", session: "Session", session_id: "Session",
               event_type: "Event", error_type: "Error", cost_source: "Cost from",
               price_version: "Price table", calls: "Model calls", source: "Source", format: "Format",
               status: "Status", reason: "Reason", files: "Files", last: "Last read", last_run: "Last run",
               sessions: "Sessions", rule: "Rule", severity: "Severity", metric: "Metric",
               condition: "Condition", group: "Group", state: "State", value: "Value",
               last_bucket: "Last bucket", notified_since: "Firing since", at: "At", text: "Message"};
  function labelOf(d, k) {
    if (d.kpis && d.kpis[k] && d.kpis[k].label) return d.kpis[k].label;
    return NAMES[k] || k;
  }
  function hoverOf(d, k) {
    var m = d.kpis && d.kpis[k];
    return m ? k + " \u2014 " + m.description + " (" + m.unit + ")" : k;
  }
  function fmtCell(v, unit) {
    if (typeof v === "number") return AKChart.fmt(v, unit);
    return v === null || v === undefined ? "\u2013" : String(v);
  }

  // Every table downloads as CSV and XLSX: the page's own JSON route with ?download=&table=.
  function downloads(name) {
    var box = h("span", {"class": "downloads", "data-table": name});
    box.appendChild(document.createTextNode("download: "));
    ["csv", "xlsx"].forEach(function (fmt, i) {
      if (i) box.appendChild(document.createTextNode(" \u00b7 "));
      box.appendChild(h("a", {href: api + query({download: fmt, table: name}), "data-format": fmt,
                              download: ""}, fmt.toUpperCase()));
    });
    return box;
  }
  // A plain table of KPI rows: the first column is the key, the rest formatted by unit.
  function kpiTable(d, rows, cols, id, name, link) {
    var wrap = h("div", {"class": "table-box"});
    var t = h("table", {id: id, "data-rows": String(rows.length)});
    var tr = h("tr");
    cols.forEach(function (col, i) {
      var text = i === 0 || (rows.length && typeof rows[0][col] === "string");
      tr.appendChild(h("th", {"data-col": col, title: hoverOf(d, col), "class": text ? "text" : ""}, labelOf(d, col)));
    });
    var thead = h("thead"); thead.appendChild(tr); t.appendChild(thead);
    var tb = h("tbody");
    rows.forEach(function (r) {
      var row = h("tr");
      cols.forEach(function (col, i) {
        var v = r[col], td = h("td", i === 0 || typeof v === "string" ? {"class": "text"} : null);
        var href = i === 0 && link ? link(v) : null;
        if (href) td.appendChild(h("a", {href: href}, v));
        else td.textContent = fmtCell(v, unitOf(d, col));
        row.appendChild(td);
      });
      tb.appendChild(row);
    });
    t.appendChild(tb);
    wrap.appendChild(t);
    wrap.appendChild(downloads(name));
    return wrap;
  }

  // ------------------------------------------------------------------ navigation
  document.querySelectorAll("nav a").forEach(function (a) {
    var n = a.dataset.nav;
    if (n === page || (page === "breakdown" && api.endsWith("/" + n))) a.classList.add("active");
    a.addEventListener("click", function (ev) {   // keep range + grain across pages
      var p = new URLSearchParams();
      ["from", "to", "grain", "tz"].forEach(function (k) { if (params.get(k)) p.set(k, params.get(k)); });
      var s = p.toString();
      a.href = a.getAttribute("href").split("?")[0] + (s ? "?" + s : "");
    });
  });

  function setParams(changes) {
    for (var k in changes) { if (!changes[k]) params.delete(k); else params.set(k, changes[k]); }
    history.pushState(null, "", location.pathname + query());
    load(true);
  }
  window.addEventListener("popstate", function () { params = new URLSearchParams(location.search); load(true); });

  $("apply").addEventListener("click", function () {
    $("preset").value = "";
    setParams({from: fromInput($("from").value), to: fromInput($("to").value), grain: $("grain").value});
  });
  $("grain").addEventListener("change", function () { setParams({grain: $("grain").value}); });
  $("preset").addEventListener("change", function () {
    var v = $("preset").value;
    if (!v || !last) return;
    var end = last.data_range && last.data_range.last_event;
    if (!end || v === "all") {
      setParams({from: last.data_range ? hour(last.data_range.first_event) : "", to: ""});
      return;
    }
    var endMs = Date.parse(hour(end) + ":00:00Z") + 3600e3;
    var days = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}[v];
    var iso = function (ms) { return new Date(ms).toISOString().slice(0, 13); };
    setParams({from: iso(endMs - days * 86400e3), to: iso(endMs)});
  });

  // ------------------------------------------------------------------ loading
  function load(userAction) {
    if (timer) clearTimeout(timer);
    $("json-link").href = api + query();
    var url = api + query();
    return fetch(url, {headers: {Accept: "application/json"}}).then(function (r) {
      return r.text().then(function (t) { return {status: r.status, text: t}; });
    }).then(function (res) {
      var d = JSON.parse(res.text);
      if (res.status !== 200) { showError(d.error || ("HTTP " + res.status)); return; }
      showError(null);
      var same = res.text.replace(/"(generated_at|query_ms|cached|stale)":[^,}]*,?/g, "") ===
                 lastText.replace(/"(generated_at|query_ms|cached|stale)":[^,}]*,?/g, "");
      last = d; lastText = res.text;
      status(d);
      if (!same || userAction) render(d);
    }).catch(function (e) {
      showError("cannot reach the dashboard server: " + e);
      $("status").textContent = "offline";
    }).then(function () {
      // a result being recomputed behind a stale one: look again soon
      timer = setTimeout(function () { load(false); }, last && last.refreshing ? Math.min(poll, 1000) : poll);
    });
  }

  function status(d) {
    var s = $("status");
    s.classList.toggle("stale", !!d.stale);
    s.textContent = d.refreshing ? "updating\u2026 (showing " + (d.generated_at || "").replace("T", " ") + ")"
      : d.stale ? "stale \u2014 store busy (" + (d.error || "").slice(0, 80) + ")"
      : "updated " + (d.generated_at || "").replace("T", " ") + (d.query_ms !== undefined ? " \u00b7 " + d.query_ms + " ms" : "");
    body.dataset.stale = d.stale ? "1" : "0";
  }
  function showError(msg) {
    var e = $("error");
    e.hidden = !msg; e.textContent = msg || "";
  }

  function render(d) {
    if (d.from !== undefined) {
      $("from").value = toInput(d.from); $("to").value = toInput(d.to);
      $("grain").value = d.grain || "hour";
    }
    $("controls").hidden = page === "session" || page === "sources" || page === "alerts";
    renderFilters(d.filters || {});
    var c = $("content");
    c.textContent = "";
    if (page === "overview") renderOverview(c, d);
    else if (page === "breakdown") renderTable(c, d, d.dim);
    else if (page === "sessions") renderTable(c, d, "session_id");
    else if (page === "session") renderSession(c, d);
    else if (page === "costs") renderCosts(c, d);
    else if (page === "sources") renderSources(c, d);
    else if (page === "alerts") renderAlerts(c, d);
    renders += 1;
    body.dataset.renders = String(renders);
    body.dataset.loaded = "1";
  }

  function renderFilters(f) {
    var box = $("filters");
    box.textContent = "";
    Object.keys(f).forEach(function (k) {
      var chip = h("span", {"class": "filter", "data-filter": k}, k + " = " + f[k]);
      var x = h("a", {href: location.pathname + query((function () { var o = {}; o[k] = null; return o; })()),
                      title: "remove filter"}, "\u00d7");
      chip.appendChild(x); box.appendChild(chip);
    });
  }

  function renderOverview(c, d) {
    var cards = h("div", {"class": "cards", id: "totals"});
    ["sessions", "users", "cost_usd", "llm_calls", "tool_calls_total", "tool_success_rate",
     "failure_rate", "regenerate_rate", "cache_hit_ratio", "time_to_first_action_s_p50"].forEach(function (k) {
      var card = h("div", {"class": "card", "data-kpi": k, title: hoverOf(d, k)});
      card.appendChild(h("div", {"class": "v"}, fmtCell(d.totals[k], unitOf(d, k))));
      card.appendChild(h("div", {"class": "k"}, labelOf(d, k)));
      var pct = d.change_pct ? d.change_pct[k] : null, prev = d.previous ? d.previous[k] : null;
      if (pct !== null && pct !== undefined) {
        var arrow = pct > 0 ? "\u25b2 " : pct < 0 ? "\u25bc " : "";
        card.appendChild(h("div", {"class": "delta " + (pct > 0 ? "up" : pct < 0 ? "down" : "flat"),
                                   title: "previous period: " + fmtCell(prev, unitOf(d, k))},
                           arrow + Math.abs(pct).toFixed(1) + "% vs previous period"));
      } else if (d.previous && !d.previous.sessions) {
        card.appendChild(h("div", {"class": "delta flat"}, "no data in the previous period"));
      } else if (prev !== null && prev !== undefined) {
        card.appendChild(h("div", {"class": "delta flat"}, "previous period: " + fmtCell(prev, unitOf(d, k))));
      }
      cards.appendChild(card);
    });
    c.appendChild(cards);
    var grid = h("div", {"class": "charts"});
    var x = d.series.map(function (r) { return r.bucket; });
    d.charts.forEach(function (ch) {
      var box = h("div", {"class": "chart-box", "data-chart": ch.title});
      grid.appendChild(box);
      AKChart.line(box, {title: ch.title, unit: ch.unit, x: x, tz: d.tz, series: ch.kpis.map(function (k) {
        return {name: labelOf(d, k), kpi: k, values: d.series.map(function (r) { return r[k]; })};
      })});
    });
    c.appendChild(grid);
    c.appendChild(downloads("series"));
    if (d.notice) c.appendChild(h("p", {"class": "note notice", id: "notice"}, d.notice));
    c.appendChild(h("p", {"class": "note"}, d.series.length + " " + d.grain + " buckets, " +
      d.from.replace("T", " ") + " \u2192 " + d.to.replace("T", " ") + " UTC (half-open; axes in " + (d.tz || "UTC") + "). Data spans " +
      (d.data_range.first_event || "?") + " \u2192 " + (d.data_range.last_event || "?") + "."));
  }

  function linkFor(d, key, value) {
    if (key === "session_id") return "/session/" + encodeURIComponent(value);
    var o = {}; o[key] = value;
    return "/" + query(o);
  }

  function renderTable(c, d, key) {
    var cols = d.columns, rows = d.rows.slice();
    var sort = params.get("sort") || d.sort || (key === "session_id" && cols.indexOf("cost_usd") >= 0 ? "cost_usd" : cols[1]);
    var asc = params.get("desc") === "0";
    rows.sort(function (a, b) {
      var x = a[sort], y = b[sort];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * (asc ? 1 : -1);
    });
    var t = h("table", {id: "table", "data-rows": String(rows.length)});
    var tr = h("tr");
    cols.forEach(function (col) {
      var th = h("th", {"data-col": col, title: hoverOf(d, col)}, labelOf(d, col));
      if (rows.length && typeof rows[0][col] === "string") th.classList.add("text");
      if (col === sort) { th.classList.add("sorted"); if (asc) th.classList.add("asc"); }
      th.addEventListener("click", function () {
        var nextAsc = col === sort ? !asc : (col === key);
        params.set("sort", col); params.set("desc", nextAsc ? "0" : "1");
        history.replaceState(null, "", location.pathname + query());
        render(last);
      });
      tr.appendChild(th);
    });
    var thead = h("thead"); thead.appendChild(tr); t.appendChild(thead);
    var tb = h("tbody");
    rows.forEach(function (r) {
      var row = h("tr");
      cols.forEach(function (col, i) {
        var td = h("td", i === 0 || typeof r[col] === "string" ? {"class": "text"} : null);
        if (i === 0) {
          var a = h("a", {href: linkFor(d, key, r[col]), "class": "drill"}, r[col] === "" ? "(none)" : r[col]);
          td.appendChild(a);
          if (key !== "session_id") {
            var o = {}; o[key] = r[col];
            td.appendChild(document.createTextNode(" "));
            td.appendChild(h("a", {href: "/sessions" + query(o), "class": "note", title: "sessions"}, "sessions\u2192"));
          }
        } else if (col === "user" || col === "model") {
          var o2 = {}; o2[col] = r[col];
          if (r[col] !== null) td.appendChild(h("a", {href: "/" + query(o2)}, r[col]));
        } else {
          td.textContent = fmtCell(r[col], d.kpis && d.kpis[col] ? d.kpis[col].unit : "");
        }
        row.appendChild(td);
      });
      tb.appendChild(row);
    });
    t.appendChild(tb);
    c.appendChild(t);
    c.appendChild(downloads("rows"));
    c.appendChild(h("p", {"class": "note"}, (d.total_rows > rows.length ? "showing " + rows.length + " of " + d.total_rows : rows.length) +
      " rows, " + d.from.replace("T", " ") + " \u2192 " + d.to.replace("T", " ") + " UTC. Click a header to sort, a name to filter the overview."));
  }

  function renderSession(c, d) {
    var s = d.session || {};
    var tl = d.timeline;
    var info = h("div", {"class": "cards", id: "session-cards"});
    function infoCard(key, value, name, text) {
      var card = h("div", {"class": "card" + (text ? " text" : ""), "data-key": key, title: key});
      card.appendChild(h("div", {"class": "v"}, value));
      card.appendChild(h("div", {"class": "k"}, name));
      info.appendChild(card);
    }
    if (tl) {
      var llm = 0, runs = 0, failed = 0, errors = 0, tools = {};
      tl.items.forEach(function (it) {
        if (it.kind === "llm") llm += 1;
        else if (it.kind === "tool") {
          var name = it.tool || "(unnamed)", t = tools[name] || (tools[name] = {tool: name, runs: 0, failed: 0, ms: 0});
          runs += 1; t.runs += 1;
          if (it.success === false) { failed += 1; t.failed += 1; }
          t.ms += it.duration_ms || 0;
        } else if (it.event_type === "error") errors += 1;
      });
      infoCard("cost_usd", AKChart.fmt(tl.total_cost_usd, "USD"), "Cost");
      infoCard("duration", AKChart.fmt(tl.duration_ms, "ms"), "Duration");
      infoCard("llm_calls", AKChart.fmt(llm, "count"), "Model calls");
      infoCard("tool_calls_total", AKChart.fmt(runs, "count"), "Tool runs");
      infoCard("tool_calls_failed", AKChart.fmt(failed, "count"), "Tool runs failed");
      infoCard("errors", AKChart.fmt(errors, "count"), "Errors");
    }
    [["user_id", "User"], ["model", "Main model"], ["start_ts", "Started (UTC)"], ["end_ts", "Ended (UTC)"],
     ["turns", "User turns"], ["project", "Project"], ["agent", "Agent"]].forEach(function (x) {
      var v = s[x[0]];
      infoCard(x[0], v === null || v === undefined ? "\u2013" : String(v).replace("T", " "), x[1], typeof v === "string");
    });
    c.appendChild(info);
    if (tl) {
      var box = h("div", {"class": "chart-box timeline-box", id: "timeline"});
      box.appendChild(h("div", {"class": "note"}, tl.items.length + " items over " + AKChart.fmt(tl.duration_ms, "ms") +
        " \u00b7 cost " + AKChart.fmt(tl.total_cost_usd, "USD") + (tl.untimed ? " \u00b7 " + tl.untimed + " events without a time (in the raw events only)" : "") +
        " \u00b7 blue: model calls, green/red: tool runs ok/failed, diamonds: errors, feedback, undo, turns" +
        (tl.session_start_ms > 0 ? ", dashed line: the session's recorded start (earlier bars began before it)" : "") + ". Hover for details."));
      AKChart.timeline(box, tl);
      c.appendChild(box);
      var trows = Object.keys(tools).map(function (k) { return tools[k]; });
      trows.sort(function (a, b) { return b.failed - a.failed || b.runs - a.runs || (a.tool < b.tool ? -1 : 1); });
      if (trows.length) {
        section(c, "Tools in this session", "Runs, failures and time spent per tool (the tool runs of the timeline).");
        var tm = {kpis: {runs: {label: "Runs", unit: "count", description: "tool runs"},
                         failed: {label: "Failed", unit: "count", description: "tool runs that failed"},
                         ms: {label: "Time spent", unit: "ms", description: "summed duration of the runs"}}};
        c.appendChild(kpiTable(tm, trows, ["tool", "runs", "failed", "ms"], "session-tools", "events"));
        var dl = c.querySelector("#session-tools").parentNode.querySelector(".downloads");
        if (dl) dl.remove();  // computed here, not a table of the JSON twin
      }
    }
    var cols = ["seq", "ts", "event_type", "tool", "success", "model", "prompt_tokens", "completion_tokens",
                "cost_usd", "duration_ms", "error_type", "agent", "data"];
    var raw = h("details", {id: "raw-events"});
    raw.appendChild(h("summary", null, "Raw events (" + d.events.length + ")"));
    var t = h("table", {id: "table", "data-rows": String(d.events.length)});
    var tr = h("tr");
    cols.forEach(function (col) { tr.appendChild(h("th", null, col)); });
    var thead = h("thead"); thead.appendChild(tr); t.appendChild(thead);
    var tb = h("tbody");
    d.events.forEach(function (e) {
      var row = h("tr", {"data-event": e.event_type});
      cols.forEach(function (col) {
        var v = e[col];
        if (col === "data") {
          var td = h("td", {"class": "text"});
          td.appendChild(h("pre", {"class": "data"}, v && v.length > 400 ? v.slice(0, 400) + "\u2026" : v));
          row.appendChild(td);
        } else row.appendChild(h("td", typeof v === "string" ? {"class": "text"} : null,
                                 v === null || v === undefined ? "" : String(v)));
      });
      tb.appendChild(row);
    });
    t.appendChild(tb);
    raw.appendChild(t);
    raw.appendChild(downloads("events"));
    c.appendChild(raw);
  }

  function section(c, title, note) {
    c.appendChild(h("h2", null, title));
    if (note) c.appendChild(h("p", {"class": "note"}, note));
  }

  function renderCosts(c, d) {
    var cards = h("div", {"class": "cards", id: "totals"});
    var total = d.by_model.reduce(function (a, r) { return a + (r.cost_usd || 0); }, 0);
    var unpriced = d.unpriced.reduce(function (a, r) { return a + (r.unpriced_tokens || 0); }, 0);
    [["cost_usd", AKChart.fmt(total, "USD"), "Cost"],
     ["cache_savings_usd", AKChart.fmt(d.cache_savings_usd, "USD"), "Saved by cache reads"],
     ["unpriced_tokens", AKChart.fmt(unpriced, "tokens"), "Unpriced tokens"]].forEach(function (x) {
      var card = h("div", {"class": "card", "data-kpi": x[0], title: x[0]});
      card.appendChild(h("div", {"class": "v"}, x[1]));
      card.appendChild(h("div", {"class": "k"}, x[2]));
      cards.appendChild(card);
    });
    c.appendChild(cards);
    var box = h("div", {"class": "chart-box", "data-chart": "cost-by-model"});
    AKChart.line(box, {title: "Cost by model (stacked)", unit: "USD", tz: d.tz, stacked: true,
      x: d.by_model_series.map(function (r) { return r.bucket; }),
      series: d.models.map(function (m) { return {name: m, kpi: m, values: d.by_model_series.map(function (r) { return r[m]; })}; })});
    c.appendChild(box);
    c.appendChild(downloads("by_model_series"));
    var model = function (v) { return "/" + query({model: v}); };
    section(c, "By model", "Cache savings: what the cache-read tokens would have cost as uncached input, minus what they cost, at the price table's base rates.");
    d.kpis.cache_savings_usd = {label: "Saved by cache reads", unit: "USD", description: "cache-read tokens priced as input minus their cache-read price"};
    c.appendChild(kpiTable(d, d.by_model, ["model", "cost_usd", "llm_calls", "tokens_prompt", "tokens_completion",
      "tokens_cache_read", "tokens_cache_creation", "cache_savings_usd", "unpriced_tokens"], "by-model", "by_model", model));
    section(c, "By agent and subagent");
    c.appendChild(kpiTable(d, d.by_agent, ["agent", "cost_usd", "llm_calls", "sessions", "tool_calls_total"], "by-agent", "by_agent",
      function (v) { return "/" + query({agent: v}); }));
    section(c, "By tool the model called", "Each model call's cost split evenly over the tools it asked for (a call that asked for Read, Read and Bash gives Read 2/3 and Bash 1/3); the last rows are the calls that asked for no tool, and calls whose source does not link calls to tools. The column sums to the cost above.");
    d.kpis.tool_calls = {label: "Times asked", unit: "count", description: "tool calls the model requested"};
    d.kpis.llm_calls_asking = {label: "Model calls", unit: "count", description: "model calls that asked for this tool"};
    d.kpis.cost_attributed = {label: "Cost (attributed)", unit: "USD", description: "the asking calls' cost, split evenly over the tools each asked for"};
    var bt = (d.by_requested_tool || []).map(function (r) {
      return {tool: r.tool, cost_attributed: r.cost_usd, llm_calls_asking: r.llm_calls, tool_calls: r.tool_calls};
    });
    c.appendChild(kpiTable(d, bt, ["tool", "cost_attributed", "llm_calls_asking", "tool_calls"], "by-requested-tool", "by_requested_tool",
      function (v) { return v.charAt(0) === "(" ? null : "/breakdown/tool" + query({tool: v}); }));
    section(c, "By MCP server", d.by_mcp_server.length ? "Tool runs of each MCP server's tools (mcp__<server>__<tool>) and how many failed." :
      "No MCP tool ran in this range.");
    if (d.by_mcp_server.length) c.appendChild(kpiTable(d, d.by_mcp_server, ["mcp_server", "tool_calls_total", "tool_calls_failed", "tool_success_rate", "sessions"],
      "by-mcp", "by_mcp_server"));
    section(c, "Unpriced tokens", d.unpriced.length ? "These models are not in the price table: their calls have no cost (never $0). Run `agentkpi reprice` after updating agentkpi." : "Every model call in the range has a cost.");
    if (d.unpriced.length) c.appendChild(kpiTable(d, d.unpriced, ["model", "unpriced_tokens"], "unpriced", "unpriced"));
    section(c, "Price tables used", "Where each model call's cost comes from: \u201csource\u201d = the cost came with the data, \u201cpriced\u201d = computed from the price table version shown, \u201cunpriced\u201d = no price known.");
    var pv = d.price_versions.map(function (r) { return {cost_source: r.cost_source, price_version: r.price_version || "\u2013", calls: r.calls}; });
    c.appendChild(kpiTable(d, pv, ["cost_source", "price_version", "calls"], "price-versions", "price_versions"));
  }

  function renderSources(c, d) {
    section(c, "Import audit", "Per source, format and machine, summed over every ingest run: what was read, merged, ignored and skipped. This is why agentkpi's totals differ from a naive sum of the files.");
    // One column per counter the audit knows (AUDIT_KINDS); lines by record type and
    // malformed lines by reason are listed in one cell each, so the table stays readable.
    var kinds = {}, perType = false, skipped = false;
    d.audit.forEach(function (a) {
      Object.keys(a.counters).forEach(function (k) {
        if (k.indexOf("lines:") === 0) perType = true;
        else if (k.indexOf("malformed:") === 0) skipped = true;
        else kinds[k] = true;
      });
    });
    function listed(counters, prefix) {
      return Object.keys(counters).filter(function (k) { return k.indexOf(prefix) === 0; }).sort(function (x, y) {
        return counters[y] - counters[x] || (x < y ? -1 : 1);
      }).map(function (k) { return k.slice(prefix.length) + " " + AKChart.fmt(counters[k], "count"); }).join(" \u00b7 ");
    }
    var order = Object.keys(d.audit_kinds).filter(function (k) { return kinds[k]; })
      .concat(Object.keys(kinds).filter(function (k) { return !d.audit_kinds.hasOwnProperty(k); }).sort());
    var cols = ["source", "format", "machine", "last_run"].concat(order);
    if (skipped) cols.push("skipped_lines");
    if (perType) cols.push("lines_by_type");
    var rows = d.audit.map(function (a) {
      var r = {source: a.source, format: a.format, machine: a.machine,
               last_run: a.last_run ? a.last_run.replace("T", " ") : null};
      order.forEach(function (k) { r[k] = a.counters.hasOwnProperty(k) ? a.counters[k] : 0; });
      if (skipped) r.skipped_lines = listed(a.counters, "malformed:") || "\u2013";
      if (perType) r.lines_by_type = listed(a.counters, "lines:") || "\u2013";
      return r;
    });
    d.kpis = {skipped_lines: {label: "Malformed lines skipped, by reason", unit: "", description: "malformed:<reason> counters"},
              lines_by_type: {label: "Lines by record type", unit: "", description: "lines:<type> counters"}};
    order.forEach(function (k) {
      var name = k.replace(/_/g, " ");
      d.kpis[k] = {label: name.charAt(0).toUpperCase() + name.slice(1), unit: "count", description: d.audit_kinds[k] || ""};
    });
    c.appendChild(kpiTable(d, rows, cols, "audit", "audit"));
    section(c, "Files", "Every file the ledger knows, by source and status; skipped files keep their reason and are read again when they change.");
    var files = d.files.map(function (f) {
      return {source: f.source, status: f.status, reason: f.reason || "\u2013", files: f.files,
              last: f.last ? f.last.replace("T", " ") : null};
    });
    d.kpis.files = {label: "Files", unit: "count", description: "files with this status"};
    c.appendChild(kpiTable(d, files, ["source", "status", "reason", "files", "last"], "files", "files"));
    section(c, "Machines", "Sessions per machine (ingest --machine).");
    c.appendChild(kpiTable(d, d.machines, ["machine", "sessions"], "machines", "machines"));
  }

  function renderAlerts(c, d) {
    if (!d.rules_file) { c.appendChild(h("p", {"class": "note", id: "no-rules"}, d.note)); return; }
    section(c, "Rules now", d.rules.length + " rule/group(s) from " + d.rules_file + ", evaluated on the last completed buckets; " +
      d.firing + " firing. 'notified since': when the firing notification went out (the state file).");
    var metrics = d.kpis || {};
    d.kpis = {};
    var when = function (v) { return v ? String(v).replace("T", " ").replace(/:00(Z)?$/, "$1") : v; };
    var rows = d.rules.map(function (r) {
      var o = {}; for (var k in r) if (r.hasOwnProperty(k)) o[k] = r[k];
      var m = metrics[r.metric];
      o.value = r.value === null || r.value === undefined ? "no data" : AKChart.fmt(r.value, m ? m.unit : "");
      o.metric = m && m.label ? m.label : r.metric;
      o.condition = r.condition_text || r.condition;
      o.last_bucket = when(r.last_bucket); o.notified_since = when(r.notified_since);
      return o;
    });
    var t = kpiTable(d, rows, ["rule", "state", "group", "metric", "condition", "value", "severity", "last_bucket", "notified_since"], "alert-rules", "rules");
    t.querySelectorAll("tbody tr").forEach(function (tr, i) { tr.children[3].title = d.rules[i].metric; });
    t.querySelectorAll("tbody tr").forEach(function (tr, i) { tr.dataset.state = d.rules[i].state; if (d.rules[i].state === "firing") tr.classList.add("firing"); });
    c.appendChild(t);
    section(c, "Last notifications", d.notifications_file ? "Newest first, from " + d.notifications_file + "." : "Add file = \"alerts.jsonl\" under [notify] to keep them.");
    var notes = d.notifications.map(function (n) {
      return {at: when(n.at), status: n.status, rule: n.rule, severity: n.severity, text: n.text};
    });
    if (notes.length) c.appendChild(kpiTable(d, notes, ["at", "status", "rule", "severity", "text"], "notifications", "notifications"));
  }

  load(true);
})();
