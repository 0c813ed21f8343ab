// Package influxq is the project's InfluxDB 1.x client: InfluxQL queries
// and line-protocol writes over HTTP. The operators' CLI, the agent's
// reconciler and the test harness all use it.
package influxq

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Series is one series of an InfluxQL result.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// Query runs InfluxQL statements against an InfluxDB 1.x at baseURL and
// returns the series of every statement, in order. Times come back as
// epoch nanoseconds (json.Number), numbers as json.Number.
func Query(baseURL, db, q string) ([]Series, error) {
	return Querier{URL: baseURL, Timeout: time.Minute}.Query(db, q)
}

// ErrNoDatabase is what Query's error wraps when the database does not
// exist (yet): tests that wait for data take it as "nothing yet".
var ErrNoDatabase = errors.New("database not found")

func queryError(q, msg string) error {
	if strings.HasPrefix(msg, "database not found") {
		return fmt.Errorf("query %q: %w: %s", q, ErrNoDatabase, strings.TrimPrefix(msg, "database not found"))
	}
	return fmt.Errorf("query %q: %s", q, msg)
}

// Querier asks an InfluxDB 1.x, with credentials and a time limit.
type Querier struct {
	URL                string
	Username, Password string        // basic auth, when set
	Token              string        // Authorization: Token (InfluxDB 2.x; 1.8 takes "user:password"), when set
	Timeout            time.Duration // of the whole request; 0: none
}

// post sends body to path and reads the whole answer, in the format
// accept asks for.
func (c Querier) post(path, contentType, accept, body string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, c.URL+path, strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	switch {
	case c.Token != "":
		req.Header.Set("Authorization", "Token "+c.Token)
	case c.Username != "":
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := (&http.Client{Timeout: c.Timeout}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// Query runs q on db ("" for none) and returns its series.
func (c Querier) Query(db, q string) ([]Series, error) {
	form := url.Values{"q": {q}, "epoch": {"ns"}}
	if db != "" {
		form.Set("db", db)
	}
	resp, body, err := c.post("/query", "application/x-www-form-urlencoded", "application/json", form.Encode())
	if err != nil {
		return nil, err
	}
	var r struct {
		Results []struct {
			Series []Series `json:"series"`
			Error  string   `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("query %q: %s: %w (body %.200q)", q, resp.Status, err, body)
	}
	if r.Error != "" {
		return nil, queryError(q, r.Error)
	}
	var out []Series
	for _, res := range r.Results {
		if res.Error != "" {
			return nil, queryError(q, res.Error)
		}
		out = append(out, res.Series...)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query %q: %s", q, resp.Status)
	}
	return out, nil
}

// FluxTable is the rows of one table of a Flux result: each row a map
// from column to its annotated CSV text, and each column's datatype (the
// #datatype annotation: string, double, long, dateTime:RFC3339...).
type FluxTable struct {
	Types map[string]string
	Rows  []map[string]string
}

// Flux runs a Flux query through /api/v2/query (InfluxDB 1.8 with
// flux-enabled, or 2.x) and returns its tables.
func (c Querier) Flux(query string) ([]FluxTable, error) {
	resp, body, err := c.post("/api/v2/query", "application/vnd.flux", "application/csv", query)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("flux query: %s: %.500s", resp.Status, body)
	}
	r := csv.NewReader(strings.NewReader(string(body)))
	r.FieldsPerRecord = -1
	var out []FluxTable
	var header, types []string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("flux query: reading its CSV: %w", err)
		}
		switch {
		case len(rec) == 1 && rec[0] == "": // a blank line ends a table
			header, types = nil, nil
		case rec[0] == "#datatype":
			header, types = nil, rec
		case strings.HasPrefix(rec[0], "#"):
		case header == nil && strings.EqualFold(rec[0], "error"):
			msg, _ := r.Read()
			return nil, fmt.Errorf("flux query: %s", strings.Join(msg, " "))
		case header == nil:
			header = rec
			t := FluxTable{Types: map[string]string{}}
			for i, h := range header {
				if i < len(types) {
					t.Types[h] = types[i]
				}
			}
			out = append(out, t)
		default:
			row := map[string]string{}
			for i, h := range header {
				if i < len(rec) {
					row[h] = rec[i]
				}
			}
			out[len(out)-1].Rows = append(out[len(out)-1].Rows, row)
		}
	}
}

// Write writes line protocol (ns precision) to db.
func (c Querier) Write(db string, lines []byte) error {
	resp, body, err := c.post("/write?precision=ns&db="+url.QueryEscape(db), "text/plain", "", string(lines))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("writing to %q: %s: %.1024s", db, resp.Status, body)
	}
	return nil
}

// String is s as an InfluxQL string literal: quoted, its quotes and
// backslashes escaped.
func String(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// AnyOf is an InfluxQL condition " AND (tag = v1 OR tag = v2 ...)", or ""
// when values is empty (no condition).
func AnyOf(tag string, values []string) string {
	if len(values) == 0 {
		return ""
	}
	conds := make([]string, len(values))
	for i, v := range values {
		conds[i] = `"` + tag + `" = ` + String(v)
	}
	return " AND (" + strings.Join(conds, " OR ") + ")"
}
