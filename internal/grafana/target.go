package grafana

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/expr"
)

// InfluxQuery is a target of Grafana's InfluxDB data source, in the
// fields its query model has for the two languages mailtick's panels use:
// raw InfluxQL (query, rawQuery, resultFormat, alias) and Flux (query).
// The Foundation SDK has no type for it; it is registered for the
// data-source type "influxdb" so that the strict check of a dashboard
// refuses any field not listed here.
type InfluxQuery struct {
	RefId        string                `json:"refId"`
	Datasource   *common.DataSourceRef `json:"datasource,omitempty"`
	Hide         bool                  `json:"hide,omitempty"`
	Query        string                `json:"query"`
	RawQuery     bool                  `json:"rawQuery,omitempty"`
	ResultFormat string                `json:"resultFormat,omitempty"`
	Alias        string                `json:"alias,omitempty"`
}

func (InfluxQuery) ImplementsDataqueryVariant() {}

func (InfluxQuery) DataqueryType() string { return "influxdb" }

func (q InfluxQuery) Equals(other variants.Dataquery) bool {
	o, ok := other.(InfluxQuery)
	return ok && q.RefId == o.RefId && q.Query == o.Query && q.RawQuery == o.RawQuery &&
		q.ResultFormat == o.ResultFormat && q.Alias == o.Alias && q.Hide == o.Hide
}

// Validate checks what Grafana needs to run the target.
func (q InfluxQuery) Validate() error {
	switch {
	case q.RefId == "":
		return errors.New("influxdb target: no refId")
	case q.Query == "":
		return fmt.Errorf("influxdb target %s: no query", q.RefId)
	case q.ResultFormat != "" && q.ResultFormat != "time_series" && q.ResultFormat != "table":
		return fmt.Errorf("influxdb target %s: resultFormat %q: want time_series or table", q.RefId, q.ResultFormat)
	}
	return nil
}

// Build makes InfluxQuery its own builder (cog.Builder).
func (q InfluxQuery) Build() (variants.Dataquery, error) {
	if err := q.Validate(); err != nil {
		return nil, cog.MakeBuildErrors("influxdb", err)
	}
	return q, nil
}

var registerOnce sync.Once

// register adds Grafana's panel kinds (the Foundation SDK's) and the
// InfluxDB target to the SDK's runtime, once.
func register() {
	registerOnce.Do(func() {
		plugins.RegisterDefaultPlugins()
		// A panel's data source type decides how the SDK reads all its
		// targets; Grafana goes by each target's own: an expression
		// (__expr__) in an InfluxDB panel is read as one.
		exprs := expr.VariantConfig()
		decode := func(strict bool) func(raw []byte) (variants.Dataquery, error) {
			return func(raw []byte) (variants.Dataquery, error) {
				var ds struct {
					Datasource struct{ Type string } `json:"datasource"`
				}
				if err := json.Unmarshal(raw, &ds); err != nil {
					return nil, err
				}
				if ds.Datasource.Type == exprs.Identifier {
					if !strict {
						return exprs.DataqueryUnmarshaler(raw)
					}
					e := &expr.Expr{}
					if err := sdkError(e.UnmarshalJSONStrict(raw)); err != nil {
						return nil, err
					}
					return e, nil
				}
				var q InfluxQuery
				dec := json.NewDecoder(bytes.NewReader(raw))
				if strict {
					dec.DisallowUnknownFields()
				}
				if err := dec.Decode(&q); err != nil {
					return nil, fmt.Errorf("influxdb target: %w", err)
				}
				if strict {
					return q, q.Validate()
				}
				return q, nil
			}
		}
		cog.NewRuntime().RegisterDataqueryVariant(variants.DataqueryConfig{
			Identifier:                 "influxdb",
			DataqueryUnmarshaler:       decode(false),
			StrictDataqueryUnmarshaler: decode(true),
		})
	})
}
