package stack

import (
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Postfix is a real Postfix (Debian's package, installed by make setup)
// running on loopback with its own configuration, queue and maillog_file,
// relaying everything to one address.
type Postfix struct {
	Dir     string // config, queue, data
	SMTP    string // host:port of its smtpd
	Maillog string // its maillog_file
	conf    string
}

const postfixMain = `compatibility_level = 3.6
myhostname = mx1.dc1.example.net
mydomain = dc1.example.net
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
relayhost = [127.0.0.1]:%[2]d
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access inline:{ {reject-me@example.net=REJECT no such user here}, {hold-me@example.net=HOLD held for review} }, permit_mynetworks, reject
smtp_tls_security_level = none
smtpd_tls_security_level = none
alias_maps =
local_recipient_maps =
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
`

// StartPostfix starts Postfix in dir: smtpd on smtpPort, relaying to
// 127.0.0.1:relayPort. Postfix runs as root (it drops to its own user).
func StartPostfix(dir string, smtpPort, relayPort int) (*Postfix, error) {
	bin, err := exec.LookPath("postfix")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/postfix"); err2 != nil {
			return nil, fmt.Errorf("postfix is not installed (make setup installs Debian's package): %w", err)
		}
		bin = "/usr/sbin/postfix"
	}
	if _, err := user.Lookup("postfix"); err != nil {
		return nil, fmt.Errorf("no postfix user (make setup installs Debian's package): %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	p := &Postfix{Dir: dir, SMTP: fmt.Sprintf("127.0.0.1:%d", smtpPort), Maillog: filepath.Join(dir, "maillog"), conf: filepath.Join(dir, "conf")}
	for _, d := range []string{p.conf, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := reachable(dir); err != nil { // Postfix's user
		return nil, err
	}
	if out, err := exec.Command("chown", "postfix", filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chown postfix: %v: %s", err, out)
	}
	if err := writeFile(filepath.Join(p.conf, "main.cf"), fmt.Sprintf(postfixMain, dir, relayPort)); err != nil {
		return nil, err
	}
	master, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		return nil, fmt.Errorf("Debian's /etc/postfix/master.cf: %w", err)
	}
	if err := writeFile(filepath.Join(p.conf, "master.cf"), masterCF(string(master), smtpPort)); err != nil {
		return nil, err
	}
	out, err := exec.Command(bin, "-c", p.conf, "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(p.Maillog)
		return nil, fmt.Errorf("postfix start: %v: %s\nmaillog:\n%s", err, out, log)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if log, _ := os.ReadFile(p.Maillog); strings.Contains(string(log), "daemon started") {
			return p, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Stop()
	log, _ := os.ReadFile(p.Maillog)
	return nil, fmt.Errorf("postfix did not start in 20s; maillog:\n%s", log)
}

// masterCF is Debian's master.cf without chroot (the test's folders are no
// chroot jail), with smtpd on loopback at port instead of port 25.
func masterCF(debian string, port int) string {
	var b strings.Builder
	for _, line := range strings.Split(debian, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 8 && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " "):
			if f[0] == "smtp" && f[1] == "inet" {
				continue
			}
			f[4] = "n" // chroot
			line = strings.Join(f, " ")
		}
		b.WriteString(line + "\n")
	}
	fmt.Fprintf(&b, "127.0.0.1:%d inet n - n - - smtpd\n", port)
	return b.String()
}

// Stop stops Postfix and waits for its master process to exit; stopping a
// stopped Postfix does nothing.
// ConfDir is its configuration folder (postfix -c, postqueue -c).
func (p *Postfix) ConfDir() string { return p.conf }

func (p *Postfix) Stop() error {
	pid := p.masterPid()
	if pid == 0 {
		return nil
	}
	out, err := exec.Command("postfix", "-c", p.conf, "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postfix stop: %v: %s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if p.masterPid() == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("postfix master (pid %d) still runs 20s after postfix stop", pid)
}

// masterPid is the pid of Postfix's running master, or 0. master.pid stays
// behind when the master exits: the process is what tells.
func (p *Postfix) masterPid() int {
	b, err := os.ReadFile(filepath.Join(p.Dir, "queue", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// Reload makes Postfix reread its configuration and restart its daemons:
// postlogd reopens maillog_file, as after logrotate's postrotate.
func (p *Postfix) Reload() error {
	out, err := exec.Command("postfix", "-c", p.conf, "reload").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postfix reload: %v: %s", err, out)
	}
	return nil
}

// Set changes main.cf settings ("name=value", postconf -e) and reloads.
func (p *Postfix) Set(settings ...string) error {
	out, err := exec.Command("postconf", append([]string{"-c", p.conf, "-e"}, settings...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("postconf -e %v: %v: %s", settings, err, out)
	}
	return p.Reload()
}

// UseSASL makes smtpd offer AUTH, checked by auth (smtpd_sasl_type =
// dovecot), and reloads.
func (p *Postfix) UseSASL(auth *SASLAuth) error {
	return p.Set("smtpd_sasl_auth_enable=yes", "smtpd_sasl_type=dovecot", "smtpd_sasl_path=inet:"+auth.Addr)
}

// Login opens an SMTP session, authenticates (AUTH PLAIN) as user with
// pass and, when it succeeds and rcpt is set, sends a message from user
// to rcpt; the error is the server's answer to a refused login. An smtpd
// started before UseSASL's reload may still take a session, without AUTH:
// Login then tries again, for up to 10 seconds.
func (p *Postfix) Login(user, pass, rcpt string) error {
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := p.login(user, pass, rcpt)
		if !errors.Is(err, errNoAuth) {
			return err
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var errNoAuth = errors.New("smtpd offers no AUTH")

func (p *Postfix) login(user, pass, rcpt string) error {
	c, err := smtp.Dial(p.SMTP)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if ok, _ := c.Extension("AUTH"); !ok {
		_ = c.Quit()
		return errNoAuth
	}
	host, _, _ := net.SplitHostPort(p.SMTP)
	if err := c.Auth(smtp.PlainAuth("", user, pass, host)); err != nil {
		_ = c.Quit()
		return err
	}
	if rcpt != "" {
		if err := c.Mail(user); err != nil {
			return err
		}
		if err := c.Rcpt(rcpt); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "From: <%s>\r\nSubject: mailtick\r\n\r\nhello\r\n", user)
		if err := w.Close(); err != nil {
			return err
		}
	}
	return c.Quit()
}

// Hangup opens an SMTP session, says EHLO and drops the connection:
// Postfix logs a lost connection after EHLO.
func (p *Postfix) Hangup() error {
	c, err := smtp.Dial(p.SMTP)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Hello("client.example.net")
}

// Flush asks Postfix to retry its deferred mail now.
func (p *Postfix) Flush() error {
	out, err := exec.Command("postqueue", "-c", p.conf, "-f").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postqueue -f: %v: %s", err, out)
	}
	return nil
}

// reachable lets every user reach dir (an MTA's own user its folders):
// the test's temp folders are 0700.
func reachable(dir string) error {
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o005); err != nil {
				return err
			}
		}
	}
	return nil
}
