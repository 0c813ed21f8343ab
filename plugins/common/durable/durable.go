// Package durable writes files so that they survive a crash or a power
// cut: the one way the rollup spool and the MTA log reader save state.
package durable

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFileSync writes b to path and fsyncs it.
func WriteFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SyncDir makes the folder's entries (files created, renamed, removed)
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteAtomic replaces path with b: a reader, or a restart after a crash,
// sees the old content or the new, never a part.
func WriteAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := WriteFileSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// Lock takes dir's lock (the file .lock in it, flock'ed) for this process:
// a second process that would write the same files, such as a second
// Telegraf with the same configuration, gets an error instead. The lock
// goes with the process; release gives it back before.
func Lock(dir string) (release func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%q is in use by another process (another Telegraf with this configuration, such as `telegraf --once` beside the running agent): %w", dir, ErrLocked)
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}

// ErrLocked is what Lock's error wraps when another process holds the lock.
var ErrLocked = errors.New("locked")
