package demo

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"io"
)

// Chart is one chart of the HTML report:
//   - "time": one line per series of [x, y] points, x in Unix seconds,
//     drawn on a time axis;
//   - "bar": one bar per label, every label in full (bars lie down when
//     the labels are long);
//   - "distribution": one line per series of [latency ms, y] points, on a
//     logarithmic latency axis.
type Chart struct {
	Title  string                  `json:"title"`
	Kind   string                  `json:"kind"`
	YTitle string                  `json:"y_title,omitempty"`
	Series map[string][][2]float64 `json:"series,omitempty"`
	Bars   map[string]float64      `json:"bars,omitempty"`
}

// Table is a table of the HTML report.
type Table struct {
	Title   string
	Columns []string
	Rows    [][]string
}

// chartJS is Chart.js (MIT), vendored from npm: see chartjs/README.md.
//
//go:embed chartjs/chart.umd.min.js
var chartJS string

// WriteHTML writes the report as one page that needs no server: the data
// and Chart.js are inside. Once the charts are drawn, each figure carries
// what a reader sees on it (data-axis: the labels of its time, latency or
// category axis; data-legend; data-bars: the bars drawn) and the body counts the charts drawn in
// data-drawn, so that a headless browser can check them.
func WriteHTML(w io.Writer, title string, charts []Chart, tables []Table) error {
	data, err := json.Marshal(charts)
	if err != nil {
		return err
	}
	return page.Execute(w, map[string]any{
		"Title": title, "Data": template.JS(data), "ChartJS": template.JS(chartJS), "Tables": tables,
	})
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1.5em; }
figure { margin: 0; } figcaption { font-weight: bold; margin-bottom: .3em; }
.chart { position: relative; height: 320px; border: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0 2em; } caption { font-weight: bold; text-align: left; margin-bottom: .3em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; } th { background: #f4f4f4; }
</style>
<script>{{.ChartJS}}</script>
</head>
<body data-drawn="0">
<h1>{{.Title}}</h1>
{{range .Tables}}<table class="report">
<caption>{{.Title}}</caption>
<tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{end}}<div class="grid" id="charts"></div>
<script>
const charts = {{.Data}};
const hhmm = v => new Date(v * 1000).toISOString().slice(11, 16);
const mmddhhmm = v => new Date(v * 1000).toISOString().slice(5, 16).replace("T", " ");
// A time axis with ticks on whole minutes, hours or days, at most 9.
function timeAxis(xs) {
  const lo = Math.min(...xs), hi = Math.max(...xs, lo + 60);
  const step = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].find(s => (hi - lo) / s <= 8) ||
    86400 * Math.ceil((hi - lo) / 86400 / 8);
  const label = hi - lo > 86400 ? mmddhhmm : hhmm;
  return axis("time (UTC)", {type: "linear", min: Math.floor(lo / step) * step, max: Math.ceil(hi / step) * step,
    ticks: {stepSize: step, callback: label}});
}
const axis = (title, extra) => Object.assign({title: {display: true, text: title}}, extra);
let drawn = 0;
for (const c of charts) {
  const fig = document.createElement("figure");
  fig.innerHTML = '<figcaption></figcaption><div class="chart"><canvas></canvas></div>';
  fig.querySelector("figcaption").textContent = c.title;
  document.getElementById("charts").appendChild(fig);
  const series = c.series || {}, bars = c.bars || {};
  const names = Object.keys(c.kind === "bar" ? bars : series).sort();
  if (!names.length) { fig.dataset.empty = "1"; continue; }
  const options = {animation: false, responsive: true, maintainAspectRatio: false,
    plugins: {legend: {display: c.kind !== "bar"}, tooltip: {enabled: true}}};
  let config, labelAxis = "x";
  if (c.kind === "bar") {
    // Long names (host names) lie on a vertical axis, each in full.
    const across = names.some(n => n.length > 12);
    if (across) {
      labelAxis = "y";
      fig.querySelector(".chart").style.height = Math.max(200, 60 + 24 * names.length) + "px";
    }
    config = {type: "bar", data: {labels: names, datasets: [{label: c.y_title || c.title, data: names.map(n => bars[n])}]},
      options: Object.assign(options, {indexAxis: labelAxis, scales: {
        [labelAxis]: {ticks: {autoSkip: false}},
        [across ? "x" : "y"]: axis(c.y_title || "", {beginAtZero: true})}})};
  } else {
    const time = c.kind === "time";
    config = {type: "line", data: {datasets: names.map(n => ({label: n, data: series[n].map(([x, y]) => ({x, y})), pointRadius: 2}))},
      options: Object.assign(options, {parsing: false, scales: {
        x: time ? timeAxis(names.flatMap(n => series[n].map(p => p[0])))
                : axis("latency (ms, log scale)", {type: "logarithmic"}),
        y: axis(c.y_title || "", {beginAtZero: true})},
        plugins: Object.assign(options.plugins, {tooltip: {callbacks: time ? {title: items => items.length ? mmddhhmm(items[0].parsed.x) + " UTC" : ""} : {}}})})};
  }
  const chart = new Chart(fig.querySelector("canvas"), config);
  fig.dataset.axis = JSON.stringify(chart.scales[labelAxis].ticks.map(t => t.label));
  fig.dataset.legend = JSON.stringify(chart.legend.legendItems.map(i => i.text));
  fig.dataset.bars = String(c.kind === "bar" ? chart.getDatasetMeta(0).data.length : 0);
  drawn++;
}
document.body.dataset.drawn = String(drawn);
</script>
</body></html>
`))
