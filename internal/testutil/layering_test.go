// Package testutil holds the test harness (stack, stacktest, plugintest,
// providertest); this test keeps the layering of the repository: what the
// agent and the operators' binary are built from depends on no test or
// developers' package.
package testutil_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/mailtick/mailtick/"

// shipped are what users run: the agent's plugins (bin/telegraf) and the
// operators' CLI with Kapacitor's UDFs (bin/mailtick).
var shipped = []string{"./plugins/...", "./cmd/mailtick"}

// forbidden are the paths no shipped package may depend on.
var forbidden = []string{module + "internal/testutil", module + "internal/dev"}

// deps lists the packages pkgs depend on (not their tests).
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)...)
	cmd.Dir = "../.." // the repository
	out, err := cmd.Output()
	require.NoError(t, err, "go list -deps %v", pkgs)
	return strings.Fields(string(out))
}

func offending(list []string) []string {
	var bad []string
	for _, p := range list {
		for _, f := range forbidden {
			if p == f || strings.HasPrefix(p, f+"/") {
				bad = append(bad, p)
			}
		}
	}
	return bad
}

func TestShippedCodeDependsOnNoTestOrDevPackage(t *testing.T) {
	for _, root := range shipped {
		t.Run(root, func(t *testing.T) {
			require.Empty(t, offending(deps(t, root)), "%s depends on a test or developers' package", root)
		})
	}
}

// The check sees a dependency where there is one: the demo runs the
// harness's servers.
func TestLayeringCheckSeesADependency(t *testing.T) {
	require.NotEmpty(t, offending(deps(t, "./internal/dev/demo")))
}
