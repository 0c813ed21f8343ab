package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/grafana"
	"github.com/mailtick/mailtick/internal/testutil/stack"
)

// dist builds the packages (what make dist does) with a release number,
// into a folder of the test's; it returns their paths by name.
func dist(t *testing.T, release string) map[string]string {
	t.Helper()
	root, err := stack.Root()
	require.NoError(t, err)
	out := t.TempDir()
	cmd := exec.Command("go", "run", ".", "-root", root, "-out", out, "-release", release)
	cmd.Dir = filepath.Join(root, "dist")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "building the packages: %s", b)
	pkgs := map[string]string{}
	for _, p := range strings.Fields(string(b)) {
		pkgs[filepath.Base(p)] = p
	}
	return pkgs
}

// find is the package whose file name starts with prefix and ends with
// suffix.
func find(t *testing.T, pkgs map[string]string, prefix, suffix string) string {
	t.Helper()
	for name, p := range pkgs {
		if strings.HasPrefix(name, prefix) && strings.HasSuffix(name, suffix) {
			return p
		}
	}
	t.Fatalf("no package %s*%s among %v", prefix, suffix, pkgs)
	return ""
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
	return string(out)
}

// TestDebPackageIntegration installs the agent's and the CLI's .deb on
// this machine with dpkg, as an operator does: the agent is
// /usr/bin/telegraf with the shipped config, Telegraf's own systemd unit
// (systemd-analyze verify) and user; the installed agent runs the
// installed config (--test) once /etc/default/telegraf is filled in; an
// upgrade to the next release keeps the changed config; remove keeps the
// config, purge removes it. The .rpm holds the same files, config and
// scripts (read with Debian's rpm).
func TestDebPackageIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	require.Zero(t, os.Geteuid(), "installing packages with dpkg needs root")
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "telegraf").CombinedOutput(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("this machine has Telegraf's own package installed (%s): the test installs the agent's package in its place", out)
	}
	first, second := dist(t, "1"), dist(t, "2")
	agent, cli := find(t, first, "mailtick-telegraf_", ".deb"), find(t, first, "mailtick_", ".deb")
	t.Cleanup(func() { exec.Command("dpkg", "-P", "mailtick-telegraf", "mailtick", "telegraf").Run() })

	// Telegraf's own package is installed: ours replaces it, and its
	// removal scripts (Telegraf's, unchanged) leave ours whole.
	sh(t, "dpkg", "-i", upstreamTelegraf(t))
	sh(t, "dpkg", "-i", agent, cli)
	status, _ := exec.Command("dpkg-query", "-W", "-f", "${Status}", "telegraf").CombinedOutput()
	require.NotContains(t, string(status), "installed", "Telegraf's package is replaced")
	require.Contains(t, sh(t, "/usr/bin/telegraf", "--version"), "mailtick")
	require.Contains(t, sh(t, "/usr/bin/mailtick", "tasks", "-h"), "Usage: mailtick tasks")
	sh(t, "systemd-analyze", "verify", "/lib/systemd/system/telegraf.service")
	require.Contains(t, sh(t, "id", "telegraf"), "(telegraf)", "Telegraf's user")
	installed, err := os.ReadFile("/etc/telegraf/telegraf.conf")
	require.NoError(t, err)
	root, err := stack.Root()
	require.NoError(t, err)
	shipped, err := os.ReadFile(filepath.Join(root, "telegraf.conf"))
	require.NoError(t, err)
	require.Equal(t, string(shipped), string(installed), "the shipped telegraf.conf")
	for _, f := range []string{"/usr/share/mailtick/telegraf.d/exim-queue.conf", "/usr/share/mailtick/tickscripts/mail_counts.tick",
		"/usr/share/mailtick/tasks.toml", "/usr/share/mailtick/kapacitor-udf.conf",
		"/usr/share/mailtick/grafana/dashboards/mailtick-sla.json", "/usr/share/mailtick/grafana/provisioning/datasources/mailtick.yaml", "/etc/telegraf/telegraf.d"} {
		_, err := os.Stat(f)
		require.NoError(t, err, f)
	}
	boards, err := grafana.Load("/usr/share/mailtick/grafana/dashboards")
	require.NoError(t, err, "the installed dashboards read under Grafana's schema")
	require.Len(t, boards, 5)

	// The operator fills in /etc/default/telegraf and adds to the config.
	defaults, err := os.ReadFile("/etc/default/telegraf")
	require.NoError(t, err)
	filled := strings.NewReplacer("MAILTICK_LISTENER_PASSWORD=\n", "MAILTICK_LISTENER_PASSWORD=s3cret\n",
		"MAILTICK_PII_KEY=\n", "MAILTICK_PII_KEY=0123456789abcdef0123456789abcdef\n", "MAILTICK_DC=dc1\n", "MAILTICK_DC=dc7\n").Replace(string(defaults))
	require.NoError(t, os.WriteFile("/etc/default/telegraf", []byte(filled), 0o640))
	changed := string(installed) + "\n# changed by the operator\n"
	require.NoError(t, os.WriteFile("/etc/telegraf/telegraf.conf", []byte(changed), 0o644))
	test := func() string { // with the environment the unit reads (EnvironmentFile)
		installed, err := os.ReadFile("/etc/default/telegraf")
		require.NoError(t, err)
		var env []string
		for _, line := range strings.Split(string(installed), "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				env = append(env, line)
			}
		}
		cmd := exec.Command("/usr/bin/telegraf", "--config", "/etc/telegraf/telegraf.conf", "--config-directory", "/etc/telegraf/telegraf.d", "--test")
		cmd.Env, cmd.Dir = append(os.Environ(), env...), t.TempDir()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "the installed agent with the installed config: %s", out)
		return string(out)
	}
	require.Contains(t, test(), "internal_memstats,dc=dc7", "the agent runs with the DC of /etc/default/telegraf")

	// Upgrade: the next release keeps what the operator changed.
	sh(t, "dpkg", "--force-confold", "-i", find(t, second, "mailtick-telegraf_", ".deb"), find(t, second, "mailtick_", ".deb"))
	require.Contains(t, sh(t, "dpkg-query", "-W", "-f", "${Version}", "mailtick-telegraf"), "-2")
	for path, want := range map[string]string{"/etc/default/telegraf": filled, "/etc/telegraf/telegraf.conf": changed} {
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, want, string(got), "%s kept on upgrade", path)
	}
	require.Contains(t, test(), "internal_memstats,dc=dc7")

	// Remove keeps the config; purge removes it.
	sh(t, "dpkg", "-r", "mailtick-telegraf", "mailtick")
	for _, gone := range []string{"/usr/bin/telegraf", "/usr/bin/mailtick", "/lib/systemd/system/telegraf.service"} {
		_, err := os.Stat(gone)
		require.ErrorIs(t, err, os.ErrNotExist, gone)
	}
	_, err = os.Stat("/etc/default/telegraf")
	require.NoError(t, err, "remove keeps the config")
	sh(t, "dpkg", "-P", "mailtick-telegraf", "mailtick")
	for _, gone := range []string{"/etc/default/telegraf", "/etc/telegraf/telegraf.conf"} {
		_, err := os.Stat(gone)
		require.ErrorIs(t, err, os.ErrNotExist, gone)
	}

	// The .rpm: the same files, config files and scripts.
	rpm := find(t, first, "mailtick-telegraf-", ".rpm")
	list := sh(t, "rpm", "-qp", "--list", rpm)
	for _, f := range []string{"/usr/bin/telegraf", "/etc/telegraf/telegraf.conf", "/etc/default/telegraf", "/lib/systemd/system/telegraf.service"} {
		require.Contains(t, list, f+"\n")
	}
	require.Equal(t, "/etc/default/telegraf\n/etc/telegraf/telegraf.conf\n", sh(t, "rpm", "-qp", "--configfiles", rpm))
	require.Contains(t, sh(t, "rpm", "-qp", "--conflicts", rpm), "telegraf")
	scripts := sh(t, "rpm", "-qp", "--scripts", rpm)
	for _, s := range []string{"preinstall scriptlet", "useradd -r -M telegraf", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet"} {
		require.Contains(t, scripts, s)
	}
}

// upstreamTelegraf builds a stand-in of Telegraf's own .deb: its removal
// scripts are Telegraf's (scripts/deb of the Telegraf source bin/telegraf
// is built from), with the files its install leaves (the binary, the
// unit, /etc/default/telegraf, the SysV script its post-install copies).
func upstreamTelegraf(t *testing.T) string {
	t.Helper()
	root, err := stack.Root()
	require.NoError(t, err)
	scripts, err := filepath.Glob(filepath.Join(root, "build", "telegraf-*", "scripts", "deb"))
	require.NoError(t, err)
	require.Len(t, scripts, 1, "Telegraf's source (make build fetches it)")
	dir := t.TempDir()
	stub := "#!/bin/sh\nexit 0\n"
	for path, content := range map[string]string{
		"DEBIAN/control":                      "Package: telegraf\nVersion: 1.40.1-1\nArchitecture: amd64\nMaintainer: test\nDescription: a stand-in of Telegraf's package\n",
		"usr/bin/telegraf":                    stub,
		"etc/init.d/telegraf":                 stub,
		"etc/default/telegraf":                "",
		"lib/systemd/system/telegraf.service": "[Service]\nExecStart=/usr/bin/telegraf\n",
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, path), []byte(content), 0o755))
	}
	for from, to := range map[string]string{"pre-remove.sh": "prerm", "post-remove.sh": "postrm"} {
		b, err := os.ReadFile(filepath.Join(scripts[0], from))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "DEBIAN", to), b, 0o755))
	}
	deb := filepath.Join(t.TempDir(), "telegraf_1.40.1-1_amd64.deb")
	sh(t, "dpkg-deb", "--root-owner-group", "--build", dir, deb)
	return deb
}
