package demo

import (
	"encoding/json"
	"html/template"
	"io"
)

// Chart is one chart of the HTML report: a line chart (series of [x, y]
// points, x in Unix seconds) or a bar chart (one bar per label).
type Chart struct {
	Title  string                  `json:"title"`
	Kind   string                  `json:"kind"` // "line" or "bar"
	Series map[string][][2]float64 `json:"series,omitempty"`
	Bars   map[string]float64      `json:"bars,omitempty"`
}

// WriteHTML writes the report as one page that needs no server: the data
// is inside, and a few lines of JavaScript draw each chart on a canvas.
// Once every chart with data is drawn, the body says so in data-drawn, so
// a headless browser can check it.
func WriteHTML(w io.Writer, title string, charts []Chart) error {
	data, err := json.Marshal(charts)
	if err != nil {
		return err
	}
	return page.Execute(w, map[string]any{"Title": title, "Data": template.JS(data)})
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
.grid { display: grid; grid-template-columns: repeat(2, 1fr); gap: 1.5em; }
figure { margin: 0; } figcaption { font-weight: bold; margin-bottom: .3em; }
canvas { border: 1px solid #ddd; width: 100%; }
</style></head>
<body data-drawn="0">
<h1>{{.Title}}</h1>
<div class="grid" id="charts"></div>
<script>
const charts = {{.Data}};
const colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
let drawn = 0;
for (const c of charts) {
  const fig = document.createElement("figure");
  fig.innerHTML = "<figcaption></figcaption><canvas width=600 height=300></canvas>";
  fig.querySelector("figcaption").textContent = c.title;
  document.getElementById("charts").appendChild(fig);
  const ctx = fig.querySelector("canvas").getContext("2d");
  const W = 600, H = 300, L = 50, B = 40, T = 18, R = 10;
  ctx.font = "11px sans-serif";
  ctx.strokeStyle = "#888";
  ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
  let ok = false;
  if (c.kind === "bar" && c.bars && Object.keys(c.bars).length) {
    const labels = Object.keys(c.bars).sort();
    const max = Math.max(...labels.map(l => c.bars[l]), 1);
    const bw = (W - L - R) / labels.length;
    labels.forEach((l, i) => {
      const h = (H - B - T) * c.bars[l] / max;
      ctx.fillStyle = colors[i % colors.length];
      ctx.fillRect(L + i * bw + 2, H - B - h, bw - 4, h);
      ctx.fillStyle = "#222";
      // host names: their first two labels (mx01.dc1) fit under a bar
      ctx.fillText(l.split(".").slice(0, 2).join(".").slice(0, Math.max(4, Math.floor(bw / 6))), L + i * bw + 2, H - B + 14);
      ctx.fillText(String(Math.round(c.bars[l])), L + i * bw + 2, H - B - h - 3);
    });
    ok = true;
  } else if (c.kind === "line" && c.series && Object.values(c.series).some(s => s.length)) {
    const names = Object.keys(c.series).sort();
    const pts = names.flatMap(n => c.series[n]);
    const maxY = Math.max(...pts.map(p => p[1]), 1);
    const minX = Math.min(...pts.map(p => p[0])), maxX = Math.max(...pts.map(p => p[0]), minX + 1);
    names.forEach((n, i) => {
      ctx.strokeStyle = colors[i % colors.length];
      ctx.beginPath();
      c.series[n].forEach(([x, y], j) => {
        const px = L + (W - L - R) * (x - minX) / (maxX - minX);
        const py = H - B - (H - B - T) * y / maxY;
        j ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
        ctx.fillStyle = ctx.strokeStyle; ctx.fillRect(px - 2, py - 2, 4, 4);
      });
      ctx.stroke();
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(n, L + 8, T + 12 + 13 * i);
    });
    ctx.fillStyle = "#222";
    ctx.fillText(String(Math.round(maxY)), 4, T + 10);
    ok = true;
  }
  if (ok) drawn++;
}
document.body.dataset.drawn = String(drawn);
</script>
</body></html>
`))
