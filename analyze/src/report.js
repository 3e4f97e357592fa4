// The interactive charts of `picket analyze --html`, drawn with the inlined ECharts from the
// report data in #picket-data. Time charts use a time axis (minutes or buckets without
// traffic stay empty, never skipped), zoom with the wheel or the slider, pan by dragging,
// show values on hover and draw alert episodes as bands. Opening the page with
// `#zoom=START_MS,END_MS` shows that range; the visible range is written under the charts.
(function () {
  "use strict";
  var R = JSON.parse(document.getElementById("picket-data").textContent);
  var charts = {};
  var CLASSES = ["TCP", "UDP", "ICMP", "Other"];

  function episodes() {
    var byId = {};
    var list = [];
    (R.alerts || []).forEach(function (a) {
      var id = a.event.id;
      var start = Date.parse(a.event.start);
      var t = Date.parse(a["@timestamp"]);
      var who = (a.source && a.source.ip) || (a.destination && a.destination.ip) || "";
      var e = byId[id];
      if (!e) {
        e = byId[id] = { name: a.rule.name + (who ? " " + who : ""), start: start, end: t };
        list.push(e);
      }
      e.start = Math.min(e.start, start);
      e.end = Math.max(e.end, t);
    });
    return list;
  }
  var EPISODES = episodes();

  function bands() {
    return {
      silent: false,
      itemStyle: { color: "rgba(220, 40, 40, 0.15)" },
      label: { show: true, position: "insideTop", color: "#a00", fontSize: 10 },
      data: EPISODES.map(function (e) {
        // A zero-length episode still gets a visible band.
        var end = Math.max(e.end, e.start + 1000);
        return [{ name: e.name, xAxis: e.start }, { xAxis: end }];
      })
    };
  }

  function zoom() {
    return [
      { type: "inside", filterMode: "none" },
      { type: "slider", filterMode: "none", height: 18, bottom: 4 }
    ];
  }

  function timeChart(id, series, yName) {
    if (series.length) {
      series[0].markArea = bands();
    }
    return draw(id, {
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 70, right: 30, top: 30, bottom: 60 },
      xAxis: { type: "time", min: tMin, max: tMax },
      yAxis: { type: "value", name: yName },
      dataZoom: zoom(),
      series: series
    });
  }

  function draw(id, option) {
    var node = document.getElementById(id);
    if (!node) {
      return null;
    }
    var chart = echarts.init(node, null, { renderer: "canvas" });
    chart.setOption(option);
    charts[id] = chart;
    return chart;
  }

  var t0 = R.totals.start_ns ? R.totals.start_ns / 1e6 : 0;
  var buckets = R.timeline.buckets;
  var at = function (b) { return t0 + b.t_s * 1000; };
  // One time range for every time chart (the capture, widened to whole minutes for the
  // per-minute bars), so that zooming one zooms the others to the same times.
  var minutes = R.tcp.connections_per_minute;
  var tMin = t0;
  var tMax = R.totals.end_ns ? R.totals.end_ns / 1e6 : t0;
  if (minutes.length) {
    tMin = Math.min(tMin, minutes[0].minute_ns / 1e6);
    tMax = Math.max(tMax, minutes[minutes.length - 1].minute_ns / 1e6 + 60000);
  }
  if (tMax <= tMin) {
    tMax = tMin + 1000;
  }

  timeChart(
    "chart-traffic",
    CLASSES.map(function (name, i) {
      return {
        name: name,
        type: "line",
        stack: "bytes",
        areaStyle: {},
        showSymbol: false,
        step: "start",
        data: buckets.map(function (b) { return [at(b), b.bytes[i]]; })
      };
    }),
    "bytes per " + R.timeline.bucket_s + " s"
  );
  timeChart(
    "chart-packets",
    [
      {
        name: "packets",
        type: "line",
        showSymbol: false,
        step: "start",
        data: buckets.map(function (b) { return [at(b), b.packets]; })
      },
      {
        name: "largest packet",
        type: "line",
        showSymbol: false,
        step: "start",
        data: buckets.map(function (b) { return [at(b), b.size_max]; })
      }
    ],
    "per " + R.timeline.bucket_s + " s"
  );
  timeChart(
    "chart-connections",
    [
      {
        name: "TCP connections opened",
        type: "bar",
        barMaxWidth: 12,
        data: minutes.map(function (m) {
          return [m.minute_ns / 1e6 + 30000, m.connections];
        })
      }
    ],
    "per minute"
  );

  // Conversations between the busiest addresses.
  var addrs = [];
  R.top_talkers.conversations.forEach(function (c) {
    [c.a, c.b].forEach(function (x) {
      if (addrs.length < 15 && addrs.indexOf(x) < 0) {
        addrs.push(x);
      }
    });
  });
  var cells = [];
  var most = 1;
  R.top_talkers.conversations.forEach(function (c) {
    var i = addrs.indexOf(c.a);
    var j = addrs.indexOf(c.b);
    if (i >= 0 && j >= 0) {
      cells.push([i, j, c.bytes]);
      cells.push([j, i, c.bytes]);
      most = Math.max(most, c.bytes);
    }
  });
  draw("chart-heatmap", {
    animation: false,
    tooltip: {
      formatter: function (p) {
        return addrs[p.value[0]] + " \u2194 " + addrs[p.value[1]] + ": " + p.value[2] + " bytes";
      }
    },
    grid: { left: 140, right: 30, top: 10, bottom: 120 },
    xAxis: { type: "category", data: addrs, axisLabel: { rotate: 60 } },
    yAxis: { type: "category", data: addrs },
    visualMap: { min: 0, max: most, calculable: true, orient: "horizontal", left: "center", bottom: 0 },
    series: [{ name: "bytes", type: "heatmap", data: cells }]
  });

  var sources = R.top_talkers.sources.slice(0, 15).reverse();
  draw("chart-talkers", {
    animation: false,
    tooltip: { trigger: "axis" },
    grid: { left: 140, right: 30, top: 10, bottom: 30 },
    xAxis: { type: "value", name: "bytes sent" },
    yAxis: { type: "category", data: sources.map(function (s) { return s.ip; }) },
    series: [{ name: "bytes", type: "bar", data: sources.map(function (s) { return s.bytes; }) }]
  });
  draw("chart-sizes", {
    animation: false,
    tooltip: { trigger: "axis" },
    grid: { left: 70, right: 30, top: 10, bottom: 30 },
    xAxis: { type: "category", data: R.packet_sizes.map(function (b) { return b.range; }) },
    yAxis: { type: "value", name: "packets" },
    series: [{ name: "packets", type: "bar", data: R.packet_sizes.map(function (b) { return b.packets; }) }]
  });

  // The visible time range, kept in step across the time charts.
  var TIME = ["chart-traffic", "chart-packets", "chart-connections"];
  var shown = document.getElementById("zoom-range");
  function showRange() {
    var c = charts["chart-traffic"];
    if (!c || !shown) {
      return;
    }
    var ext = c.getModel().getComponent("xAxis", 0).axis.scale.getExtent();
    shown.textContent = new Date(ext[0]).toISOString() + " \u2013 " + new Date(ext[1]).toISOString();
    shown.setAttribute("data-start-ms", String(Math.round(ext[0])));
    shown.setAttribute("data-end-ms", String(Math.round(ext[1])));
  }
  echarts.connect(TIME.map(function (id) { return charts[id]; }).filter(Boolean));
  if (charts["chart-traffic"]) {
    charts["chart-traffic"].on("datazoom", showRange);
  }
  var m = /zoom=(\d+),(\d+)/.exec(location.hash);
  if (m && charts["chart-traffic"]) {
    charts["chart-traffic"].dispatchAction({
      type: "dataZoom",
      startValue: Number(m[1]),
      endValue: Number(m[2])
    });
  }
  showRange();

  // Sortable tables: a click on a header sorts by that column (again: the other way).
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.querySelectorAll("th");
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var rows = Array.prototype.slice.call(table.querySelectorAll("tr")).slice(1);
        var numeric = rows.length && rows[0].children[col] &&
          rows[0].children[col].className === "n";
        var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1;
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
        rows.sort(function (a, b) {
          var x = a.children[col] ? a.children[col].textContent : "";
          var y = b.children[col] ? b.children[col].textContent : "";
          if (numeric) {
            return dir * (parseFloat(x.replace(/[^0-9.eE+-]/g, "")) - parseFloat(y.replace(/[^0-9.eE+-]/g, "")));
          }
          return dir * x.localeCompare(y);
        });
        rows.forEach(function (r) { table.appendChild(r); });
      });
    });
  });

  // Where each chart was drawn (page coordinates), and how many episodes got a band.
  Object.keys(charts).forEach(function (id) {
    var r = document.getElementById(id).getBoundingClientRect();
    document.getElementById(id).setAttribute("data-box", [
      Math.round(r.left + window.scrollX), Math.round(r.top + window.scrollY),
      Math.round(r.width), Math.round(r.height)
    ].join(","));
  });
  document.body.setAttribute("data-episodes", String(EPISODES.length));
  document.body.setAttribute("data-charts-drawn", String(Object.keys(charts).length));
  window.picketCharts = charts;
})();
