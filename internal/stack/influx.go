package stack

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mailtick/mailtick/internal/pii"
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
	Username, Password string
	Timeout            time.Duration // of the whole request; 0: none
}

// Query runs q on db ("" for none) and returns its series.
func (c Querier) Query(db, q string) ([]Series, error) {
	form := url.Values{"q": {q}, "epoch": {"ns"}}
	if db != "" {
		form.Set("db", db)
	}
	req, err := http.NewRequest(http.MethodPost, c.URL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := (&http.Client{Timeout: c.Timeout}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
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

// Query runs InfluxQL against this server.
func (db *InfluxDB) Query(database, q string) ([]Series, error) {
	return Query(db.URL, database, q)
}

// Count returns the single number a query like SELECT count(x) FROM m
// yields, or 0 when the result is empty.
func (db *InfluxDB) Count(database, q string) (int64, error) {
	series, err := db.Query(database, q)
	if err != nil || len(series) == 0 || len(series[0].Values) == 0 {
		return 0, err
	}
	n, ok := series[0].Values[0][1].(json.Number)
	if !ok {
		return 0, fmt.Errorf("query %q: not a number: %v", q, series[0].Values[0][1])
	}
	return n.Int64()
}

// Write writes line protocol (ns precision) to a database of this server.
func (db *InfluxDB) Write(database, lines string) error {
	resp, err := http.Post(db.URL+"/write?precision=ns&db="+url.QueryEscape(database), "text/plain", strings.NewReader(lines))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("writing to %q: %s: %s", database, resp.Status, body)
	}
	return nil
}

// PrivacyScan reads every string value and tag value of database and
// returns how many it read and those that hold an e-mail or IP address.
func (db *InfluxDB) PrivacyScan(database string) (checked int, leaks []string, err error) {
	dump, err := db.Query(database, `SELECT * FROM /.*/`)
	if err != nil {
		return 0, nil, err
	}
	tags, err := db.Query(database, `SHOW TAG VALUES WITH KEY =~ /.*/`)
	if err != nil {
		return 0, nil, err
	}
	check := func(s string) {
		checked++
		if pii.Contains(s) {
			leaks = append(leaks, s)
		}
	}
	for _, s := range append(dump, tags...) {
		for _, row := range s.Values {
			for _, v := range row {
				if str, ok := v.(string); ok {
					check(str)
				}
			}
		}
		for _, v := range s.Tags {
			check(v)
		}
	}
	return checked, leaks, nil
}
