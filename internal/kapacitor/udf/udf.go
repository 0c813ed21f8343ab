// Package udf runs a Kapacitor UDF handler on the pipes Kapacitor gives a
// UDF process (`mailtick udf`).
package udf

import (
	"io"

	"github.com/influxdata/kapacitor/udf/agent"
)

// Serve runs the handler newHandler makes on in and out until Kapacitor
// closes them.
func Serve(in io.ReadCloser, out io.WriteCloser, newHandler func(chan<- *agent.Response) agent.Handler) error {
	a := agent.New(in, out)
	a.Handler = newHandler(a.Responses)
	if err := a.Start(); err != nil {
		return err
	}
	return a.Wait()
}
