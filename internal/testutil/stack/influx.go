package stack

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/pii"
)

// Series is one series of an InfluxQL result.
type Series = influxq.Series

// Querier asks an InfluxDB 1.x (influxq.Querier).
type Querier = influxq.Querier

// ErrNoDatabase is what Query's error wraps when the database does not
// exist (yet): tests that wait for data take it as "nothing yet".
var ErrNoDatabase = influxq.ErrNoDatabase

// Query runs InfluxQL statements against an InfluxDB 1.x at baseURL.
func Query(baseURL, db, q string) ([]Series, error) { return influxq.Query(baseURL, db, q) }

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
	return Querier{URL: db.URL, Timeout: time.Minute}.Write(database, []byte(lines))
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
