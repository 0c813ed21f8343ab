// Command dist builds the packages of mailtick: the agent (bin/telegraf,
// the shipped telegraf.conf and drop-ins, Telegraf's own systemd unit and
// user) and the operators' CLI (bin/mailtick, the TICKscripts and
// tasks.toml, the UDF declaration), as .deb and .rpm, with nfpm. It is a
// module of its own so that the packager's dependencies never reach the
// agent's. Run from the repository root by `make dist`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

func main() {
	root := flag.String("root", ".", "the repository root (bin/ built)")
	out := flag.String("out", "build/dist", "where the packages go")
	release := flag.String("release", "1", "the package release (a rebuild of the same versions: 2, 3…)")
	flag.Parse()
	if err := run(*root, *out, *release); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

func run(root, out, release string) error {
	mailtick, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		return err
	}
	telegraf, err := telegrafVersion(root)
	if err != nil {
		return err
	}
	version := strings.TrimPrefix(telegraf, "v") + "+mailtick" + strings.TrimSpace(string(mailtick))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	p := func(rel string) string { return filepath.Join(root, rel) }
	unit := p("build/telegraf-" + telegraf + "/scripts/telegraf.service")
	if _, err := os.Stat(unit); err != nil {
		return fmt.Errorf("Telegraf's systemd unit (make build fetches Telegraf's source): %w", err)
	}
	agent := files.Contents{
		{Source: p("bin/telegraf"), Destination: "/usr/bin/telegraf", FileInfo: &files.ContentFileInfo{Mode: 0o755}},
		{Source: p("telegraf.conf"), Destination: "/etc/telegraf/telegraf.conf", Type: files.TypeConfigNoReplace},
		{Source: p("dist/files/default.env"), Destination: "/etc/default/telegraf", Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o640}},
		{Destination: "/etc/telegraf/telegraf.d", Type: files.TypeDir},
		{Source: unit, Destination: "/lib/systemd/system/telegraf.service"},
		// Copies the post-install script puts back if the replaced
		// telegraf package's removal deleted them.
		{Source: unit, Destination: "/usr/share/mailtick/telegraf.service"},
		{Source: p("dist/files/default.env"), Destination: "/usr/share/mailtick/default.env"},
		// A glob: nfpm puts each match in the folder.
		{Source: p("telegraf.d/*.conf"), Destination: "/usr/share/mailtick/telegraf.d/"},
	}
	cli := files.Contents{
		{Source: p("bin/mailtick"), Destination: "/usr/bin/mailtick", FileInfo: &files.ContentFileInfo{Mode: 0o755}},
		{Source: p("tasks.toml"), Destination: "/usr/share/mailtick/tasks.toml"},
		{Source: p("dist/files/kapacitor-udf.conf"), Destination: "/usr/share/mailtick/kapacitor-udf.conf"},
		{Source: p("tickscripts/*.tick"), Destination: "/usr/share/mailtick/tickscripts/"},
		{Source: p("grafana/dashboards/*.json"), Destination: "/usr/share/mailtick/grafana/dashboards/"},
		{Source: p("grafana/provisioning/datasources/mailtick.yaml"), Destination: "/usr/share/mailtick/grafana/provisioning/datasources/mailtick.yaml"},
		{Source: p("grafana/provisioning/dashboards/mailtick.yaml"), Destination: "/usr/share/mailtick/grafana/provisioning/dashboards/mailtick.yaml"},
	}
	packages := []*nfpm.Info{
		{
			Name:        "mailtick-telegraf",
			Version:     version,
			Release:     release,
			Description: "Telegraf " + telegraf + " with mailtick's plugins: mail-platform telemetry (NSQ events, provider webhooks, MTA logs) with the per-DC config",
			Overridables: nfpm.Overridables{
				// It is Telegraf, in Telegraf's places: one of the two.
				Conflicts: []string{"telegraf"}, Replaces: []string{"telegraf"}, Provides: []string{"telegraf"},
				Contents: agent,
				Scripts: nfpm.Scripts{PreInstall: p("dist/files/preinst.sh"), PostInstall: p("dist/files/postinst.sh"),
					PreRemove: p("dist/files/prerm.sh"), PostRemove: p("dist/files/postrm.sh")},
				// After an obsoleted telegraf's %postun.
				RPM: nfpm.RPM{Scripts: nfpm.RPMScripts{PostTrans: p("dist/files/postinst.sh")}},
			},
		},
		{
			Name:         "mailtick",
			Version:      strings.TrimSpace(string(mailtick)),
			Release:      release,
			Description:  "mailtick's operators' CLI (tasks, sla, deliverability, trace, check) and Kapacitor UDFs, with the TICKscripts and tasks.toml",
			Overridables: nfpm.Overridables{Contents: cli},
		},
	}
	for _, info := range packages {
		info.Arch, info.Platform, info.Maintainer = "amd64", "linux", "mailtick <mailtick@example.com>"
		info.Homepage, info.License, info.Section, info.Priority = "https://github.com/mailtick/mailtick", "MIT", "admin", "optional"
		for _, format := range []string{"deb", "rpm"} {
			path, err := build(nfpm.WithDefaults(clone(info)), format, out)
			if err != nil {
				return fmt.Errorf("%s %s: %w", info.Name, format, err)
			}
			fmt.Println(path)
		}
	}
	return nil
}

// clone copies an Info for one packager (PrepareForPackager changes the
// contents).
func clone(info *nfpm.Info) *nfpm.Info {
	c := *info
	c.Contents = nil
	for _, f := range info.Contents {
		x := *f
		c.Contents = append(c.Contents, &x)
	}
	return &c
}

func build(info *nfpm.Info, format, out string) (string, error) {
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", err
	}
	pkg, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	path := filepath.Join(out, pkg.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// telegrafVersion is the Telegraf the agent is built from (go.mod of the
// repository).
func telegrafVersion(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/influxdata/telegraf" {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("go.mod does not require github.com/influxdata/telegraf")
}
