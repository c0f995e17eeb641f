/* agentkpi chart renderer: small, dependency-free SVG line charts.
 *
 *   AKChart.line(container, {title, unit, x: ["2026-05-20T00:00:00", ...],
 *                            series: [{name, values: [..]}]})
 *
 * Draws axes with date labels, nice y ticks, a legend, one path per series,
 * and a hover read-out. Times are shown in UTC as given by the API.
 */
(function (global) {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { if (attrs.hasOwnProperty(k)) e.setAttribute(k, attrs[k]); }
    if (parent) parent.appendChild(e);
    return e;
  }

  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; }
    var span = hi - lo, step = Math.pow(10, Math.floor(Math.log10(span / n)));
    var err = (n * step) / span;
    if (err <= 0.15) step *= 10; else if (err <= 0.35) step *= 5; else if (err <= 0.75) step *= 2;
    var t = Math.floor(lo / step) * step, ticks = [+t.toPrecision(12)];
    while (ticks[ticks.length - 1] < hi - step * 1e-9) { t += step; ticks.push(+t.toPrecision(12)); }
    return ticks;
  }

  // Mirrors agentkpi.kpis.display.format_value (a test holds the two to the same outputs).
  var DURATION_UNITS = {ms: 0.001, s: 1};
  function fmtCount(v) {
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    if (Math.round(v) === v) return String(v);
    return v.toFixed(a < 1 ? 3 : 1);
  }
  function fmtDuration(sec) {
    var a = Math.abs(sec);
    if (a < 1) {
      var ms = sec * 1000;
      return (Math.abs(ms) >= 10 || Math.round(ms) === ms ? ms.toFixed(0) : ms.toFixed(1)) + " ms";
    }
    if (a < 60) return sec.toFixed(1) + " s";
    if (a < 3600) return (sec / 60).toFixed(1) + " min";
    return (sec / 3600).toFixed(1) + " h";
  }
  function fmtUsd(v) {
    var a = Math.abs(v);
    if (a === 0) return "$0";
    if (a >= 1e6) return "$" + (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return "$" + (v / 1e3).toFixed(1) + "k";
    if (a >= 100) return "$" + Math.round(v).toLocaleString("en-US");
    if (a >= 0.01) return "$" + v.toFixed(2);
    if (a >= 0.0001) return "$" + v.toFixed(4);
    return "$" + v.toFixed(6);
  }
  function fmt(v, unit) {
    if (v === null || v === undefined) return "\u2013";
    if (typeof v !== "number") return String(v);
    if (!isFinite(v)) return "\u2013";
    if (unit === "ratio") {
      var a = Math.abs(v);
      return (v * 100).toFixed(a < 0.1 && a > 0 ? 1 : 0) + "%";
    }
    if (unit === "USD") return fmtUsd(v);
    if (DURATION_UNITS.hasOwnProperty(unit)) return fmtDuration(v * DURATION_UNITS[unit]);
    return fmtCount(v);
  }

  // Ticks of a duration axis are round in the unit they are shown in (2 h, 4 h; not 13.9 h).
  function durationTicks(lo, hi, unit) {
    var f = DURATION_UNITS[unit], top = Math.max(Math.abs(lo), Math.abs(hi)) * f;
    var scale = top >= 7200 ? 3600 : top >= 120 ? 60 : top >= 2 ? 1 : 0.001;
    return niceTicks(lo * f / scale, hi * f / scale, 4).map(function (v) { return v * scale / f; });
  }
  function parseTime(s) { return Date.parse(s.length <= 19 ? s + "Z" : s); }

  // Axis labels in the page's time zone; a range that spans days carries the date.
  function timeLabel(ms, spanMs, tz) {
    var o = {timeZone: tz || "UTC", hourCycle: "h23"};
    if (spanMs <= 86400e3) { o.hour = "2-digit"; o.minute = "2-digit"; }
    else if (spanMs <= 14 * 86400e3) { o.month = "short"; o.day = "numeric"; o.hour = "2-digit"; o.minute = "2-digit"; }
    else if (spanMs <= 400 * 86400e3) { o.month = "short"; o.day = "numeric"; }
    else { o.year = "numeric"; o.month = "short"; }
    try { return new Intl.DateTimeFormat("en-US", o).format(new Date(ms)); }
    catch (e) { o.timeZone = "UTC"; return new Intl.DateTimeFormat("en-US", o).format(new Date(ms)); }
  }

  function line(container, spec) {
    if (spec.stacked) {  // each series drawn on top of the ones before it
      var acc = spec.x.map(function () { return 0; });
      spec = {title: spec.title, unit: spec.unit, x: spec.x, tz: spec.tz, series: spec.series.map(function (s) {
        return {name: s.name, kpi: s.kpi, values: s.values.map(function (v, j) { acc[j] += (v || 0); return acc[j]; })};
      })};
    }
    var W = 560, m = {l: 56, r: 14, t: 30, b: 46};
    // Legend entries flow into as many rows as they need (a long model name never runs off).
    var legend = [], lrow = 0, lcol = m.l;
    spec.series.forEach(function (s) {
      var w = 24 + String(s.name).length * 6.2;
      if (lcol > m.l && lcol + w - 10 > W - m.r) { lrow += 1; lcol = m.l; }
      legend.push({x: lcol, row: lrow});
      lcol += w;
    });
    var H = 240 + lrow * 15;
    m.b += lrow * 15;
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, "class": "chart", role: "img",
                         "aria-label": spec.title + " (" + spec.unit + ")"});
    var xs = spec.x.map(parseTime);
    var all = [];
    spec.series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && !isNaN(v)) all.push(+v); }); });
    var lo = Math.min(0, all.length ? Math.min.apply(null, all) : 0);
    var hi = all.length ? Math.max.apply(null, all) : 1;
    if (spec.unit === "ratio") hi = Math.max(hi, 0.0001);
    var yt = DURATION_UNITS.hasOwnProperty(spec.unit) ? durationTicks(lo, hi, spec.unit) : niceTicks(lo, hi, 4);
    lo = yt[0]; hi = yt[yt.length - 1];
    var x0 = xs.length ? xs[0] : 0, x1 = xs.length > 1 ? xs[xs.length - 1] : x0 + 1;
    var pw = W - m.l - m.r, ph = H - m.t - m.b;
    function X(t) { return m.l + (t - x0) / (x1 - x0) * pw; }
    function Y(v) { return m.t + ph - (v - lo) / (hi - lo || 1) * ph; }

    el("text", {x: m.l, y: 16, "class": "chart-title"}, svg).textContent = spec.title;
    el("text", {x: W - m.r, y: 16, "class": "chart-unit", "text-anchor": "end"}, svg).textContent = spec.unit;
    yt.forEach(function (v) {
      el("line", {x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), "class": "grid"}, svg);
      el("text", {x: m.l - 6, y: Y(v) + 4, "text-anchor": "end", "class": "tick"}, svg).textContent = fmt(v, spec.unit);
    });
    var span = x1 - x0, n = Math.min(span > 86400e3 ? 4 : 6, xs.length);  // dated labels are wider
    for (var i = 0; i < n; i++) {
      var idx = n === 1 ? 0 : Math.round(i * (xs.length - 1) / (n - 1));
      var tx = X(xs[idx]);
      el("line", {x1: tx, x2: tx, y1: m.t + ph, y2: m.t + ph + 4, "class": "axis"}, svg);
      el("text", {x: tx, y: m.t + ph + 17, "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle",
                  "class": "tick"}, svg).textContent = timeLabel(xs[idx], span, spec.tz);
    }
    el("line", {x1: m.l, x2: W - m.r, y1: m.t + ph, y2: m.t + ph, "class": "axis"}, svg);
    spec.series.forEach(function (s, k) {
      var color = COLORS[k % COLORS.length], d = "", pen = false;
      s.values.forEach(function (v, j) {
        if (v === null || isNaN(v)) { pen = false; return; }
        d += (pen ? "L" : "M") + X(xs[j]).toFixed(1) + "," + Y(+v).toFixed(1);
        pen = true;
      });
      if (xs.length === 1 && d) d += "h1";
      el("path", {d: d, stroke: color, "class": "series", "data-series": s.kpi || s.name,
                  "data-points": String(s.values.length)}, svg);
      s.values.forEach(function (v, j) {   // a value between two gaps: draw it as a dot
        var ok = function (i) { var w = s.values[i]; return w !== null && w !== undefined && !isNaN(w); };
        if (ok(j) && !(j > 0 && ok(j - 1)) && !(j < s.values.length - 1 && ok(j + 1)) && xs.length > 1)
          el("circle", {cx: X(xs[j]).toFixed(1), cy: Y(+v).toFixed(1), r: 2.2, fill: color}, svg);
      });
      var ly = H - 14 - (lrow - legend[k].row) * 15;
      el("rect", {x: legend[k].x, y: ly, width: 10, height: 10, fill: color}, svg);
      var lt = el("text", {x: legend[k].x + 14, y: ly + 9, "class": "legend"}, svg);
      lt.textContent = s.name;
    });
    // hover read-out
    var cursor = el("line", {y1: m.t, y2: m.t + ph, "class": "cursor", visibility: "hidden"}, svg);
    var tip = el("text", {x: m.l + 4, y: m.t + 10, "class": "tip"}, svg);
    var hit = el("rect", {x: m.l, y: m.t, width: pw, height: ph, fill: "transparent"}, svg);
    hit.addEventListener("mousemove", function (ev) {
      var box = svg.getBoundingClientRect();
      var px = (ev.clientX - box.left) * W / box.width;
      var t = x0 + (px - m.l) / pw * (x1 - x0), best = 0;
      for (var j = 1; j < xs.length; j++) if (Math.abs(xs[j] - t) < Math.abs(xs[best] - t)) best = j;
      cursor.setAttribute("x1", X(xs[best])); cursor.setAttribute("x2", X(xs[best]));
      cursor.setAttribute("visibility", "visible");
      tip.textContent = spec.x[best].replace("T", " ").slice(0, 16) + "  " + spec.series.map(function (s) {
        return s.name + " " + fmt(s.values[best], spec.unit);
      }).join("  ");
    });
    hit.addEventListener("mouseleave", function () { cursor.setAttribute("visibility", "hidden"); tip.textContent = ""; });
    container.appendChild(svg);
    return svg;
  }

  // ---------------------------------------------------------------- session timeline
  // AKChart.timeline(container, tl): tl is the session API's "timeline" (agentkpi.views).
  // One band per lane (main agent, subagents indented under the call that started them);
  // model calls and tool runs as bars, errors/feedback/undo/turns as marks, the
  // cumulative cost as a line above. Every shape carries a <title> read-out.
  // Bars that would overlap (parallel tool runs, calls in flight together) go on rows of
  // their own inside their lane's band, model calls above tool runs; the band grows with
  // its rows (up to MAX_ROWS a kind: past that, a bar shares the row that frees first).
  var MAX_ROWS = 8, LLM_ROW = 8, TOOL_ROW = 12, MIN_W = 2, GAP = 1;
  function fmtMs(ms) { return fmtDuration(ms / 1000); }
  function packRows(bars) {
    // bars: [{x0, x1}] of one kind in one lane; sets bar.row (greedy, in start order)
    var ends = [];
    bars.slice().sort(function (a, b) { return a.x0 - b.x0 || a.x1 - b.x1; }).forEach(function (b) {
      var r = 0;
      while (r < ends.length && ends[r] + GAP > b.x0) r++;
      if (r >= MAX_ROWS) {  // full: the row that frees first
        r = 0;
        for (var k = 1; k < ends.length; k++) { if (ends[k] < ends[r]) r = k; }
      }
      ends[r] = Math.max(ends[r] || 0, b.x1);
      b.row = r;
    });
    return Math.max(ends.length, 1);
  }
  function timeline(container, tl) {
    var lanes = tl.lanes, top = 70, left = 150, W = 1100, right = 16, pw = W - left - right;
    var span = Math.max(tl.duration_ms, 1);
    var X = function (t) { return left + (t / span) * pw; };
    var row = {}, bars = {};
    lanes.forEach(function (ln, i) { row[ln.id] = i; bars[ln.id] = {llm: [], tool: []}; });
    var shapes = tl.items.map(function (it) {
      var ln = lanes[row[it.lane] || 0].id, x0 = X(it.start);
      var s = {it: it, lane: ln, x0: x0, x1: Math.max(X(it.end), x0 + MIN_W)};
      if (it.kind !== "mark") bars[ln][it.kind === "llm" ? "llm" : "tool"].push(s);
      return s;
    });
    // each lane's band: [y, y + height), llm rows from y + 3, tool rows under them
    var band = {}, y = top;
    lanes.forEach(function (ln) {
      var nl = packRows(bars[ln.id].llm), nt = packRows(bars[ln.id].tool);
      var toolTop = 3 + nl * LLM_ROW - 2;
      band[ln.id] = {y: y, h: toolTop + nt * TOOL_ROW + 1, toolTop: toolTop};
      y += band[ln.id].h;
    });
    var H = y + 30;
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, "class": "timeline", role: "img",
                         "aria-label": "session timeline", "data-items": String(tl.items.length)});
    lanes.forEach(function (ln, i) {
      var b = band[ln.id];
      el("rect", {x: 0, y: b.y, width: W, height: b.h, "class": i % 2 ? "lane odd" : "lane",
                  "data-lane": ln.id}, svg);
      var t = el("text", {x: 6 + ln.depth * 12, y: b.y + 15, "class": "lane-label",
                          "data-lane": ln.id}, svg);
      t.textContent = (ln.depth ? "\u21b3 " : "") + (ln.label.length > 18 ? ln.label.slice(0, 17) + "\u2026" : ln.label);
      el("title", {}, t).textContent = ln.label + (ln.parent_call ? " (started by " + ln.parent_call + ")" : "");
    });
    // time axis
    for (var i = 0; i <= 5; i++) {
      var tv = span * i / 5, xx = X(tv);
      el("line", {x1: xx, x2: xx, y1: top - 4, y2: H - 26, "class": "grid"}, svg);
      el("text", {x: xx, y: H - 10, "text-anchor": i === 5 ? "end" : "middle", "class": "tick"}, svg).textContent = fmtMs(tv);
    }
    // the recorded session start, when a bar reaches back before it (the axis starts there)
    if (tl.session_start_ms > 0) {
      var sx = X(tl.session_start_ms);
      el("title", {}, el("line", {x1: sx, x2: sx, y1: top - 4, y2: H - 26, "class": "session-start"}, svg))
        .textContent = "session start (recorded) at " + fmtMs(tl.session_start_ms);
    }
    // cumulative cost
    if (tl.cost.length) {
      var maxc = tl.cost[tl.cost.length - 1].cost_usd || 1, d = "M" + X(0) + "," + (top - 8);
      tl.cost.forEach(function (p) { d += "L" + X(p.t).toFixed(1) + "," + (top - 8 - (p.cost_usd / maxc) * 50).toFixed(1); });
      d += "L" + X(span).toFixed(1) + "," + (top - 8 - 50);
      el("path", {d: d, "class": "cost-line", "data-total": String(tl.total_cost_usd)}, svg);
      el("text", {x: left - 6, y: top - 50, "text-anchor": "end", "class": "tick"}, svg).textContent = fmtUsd(maxc);
      el("text", {x: left - 6, y: top - 8, "text-anchor": "end", "class": "tick"}, svg).textContent = "cumulative cost";
    }
    shapes.forEach(function (s) {
      var it = s.it, b = band[s.lane], shape, tip;
      if (it.kind === "mark") {
        shape = el("path", {d: "M" + s.x0.toFixed(1) + "," + (b.y + 3) + "l5,8l-5,8l-5,-8z",
                            "class": "mark " + it.event_type, "data-kind": "mark", "data-event": it.event_type,
                            "data-lane": s.lane}, svg);
        tip = it.label + (it.message ? ": " + it.message : "") + " at " + fmtMs(it.start);
      } else {
        var llm = it.kind === "llm";
        var cls = llm ? "bar llm" : "bar tool" + (it.success === false ? " failed" : it.success === true ? " ok" : "");
        shape = el("rect", {x: s.x0.toFixed(1), y: b.y + (llm ? 3 + s.row * LLM_ROW : b.toolTop + s.row * TOOL_ROW),
                            width: (s.x1 - s.x0).toFixed(1), height: llm ? 6 : 10, "class": cls,
                            "data-kind": it.kind, "data-lane": s.lane}, svg);
        if (llm) {
          var tk = it.tokens;
          tip = (it.model || "model") + " \u00b7 in " + fmtCount(tk.input || 0) + ", out " + fmtCount(tk.output || 0) +
                ", cache read " + fmtCount(tk.cache_read || 0) + ", cache write " + fmtCount(tk.cache_write || 0) +
                " \u00b7 " + (it.cost_usd === null || it.cost_usd === undefined ? "unpriced" : fmtUsd(it.cost_usd)) +
                (it.latency_ms !== null && it.latency_ms !== undefined ? " \u00b7 " + fmtMs(it.latency_ms) : "");
        } else {
          tip = (it.tool || "tool") + " \u00b7 " + (it.duration_ms !== null && it.duration_ms !== undefined ? fmtMs(it.duration_ms) : "no duration") +
                " \u00b7 " + (it.success === false ? "failed" : it.success === true ? "succeeded" : "no outcome");
        }
      }
      el("title", {}, shape).textContent = tip;
    });
    container.appendChild(svg);
    return svg;
  }

  global.AKChart = {line: line, fmt: fmt, timeline: timeline};
})(window);
