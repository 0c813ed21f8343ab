package maillog

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// How a follower keeps its place across rotation, as Vector's and
// Filebeat's file sources do:
//
//   - A file is known by its inode and by a fingerprint of its first bytes
//     (fingerprintBytes, fewer while it is shorter): an inode reused, or a
//     file truncated and written again past the saved offset
//     (copytruncate while the agent was down), no longer matches.
//   - Renamed away (logrotate's create mode), the file is read on: rsyslog
//     writes it until postrotate's HUP. The follower turns to the new file
//     at the path once the old one has been quiet for rotate_wait.
//   - The saved file is looked for among the rotated names of the path
//     (<path>.1, <path>-20261203, ...; compressed ones cannot be read) when
//     the path holds another: by inode (renamed), or by fingerprint (a
//     copy, with copytruncate). Its unread tail is read first.

// fingerprintBytes is how much of a file's start identifies it.
const fingerprintBytes = 256

// fingerprint identifies a file by its first Len bytes.
type fingerprint struct {
	Len int    `json:"len"`
	Sum string `json:"sum"`
}

// fingerprintOf is the fingerprint of f's first bytes, up to
// fingerprintBytes.
func fingerprintOf(f *os.File) (fingerprint, error) {
	buf := make([]byte, fingerprintBytes)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return fingerprint{}, err
	}
	sum := sha256.Sum256(buf[:n])
	return fingerprint{Len: n, Sum: hex.EncodeToString(sum[:16])}, nil
}

// matches tells whether f starts as the file fp was taken of. A
// fingerprint of nothing (an empty file) matches any.
func (fp fingerprint) matches(f *os.File) bool {
	if fp.Len == 0 {
		return true
	}
	buf := make([]byte, fp.Len)
	if n, err := f.ReadAt(buf, 0); n < fp.Len || (err != nil && err != io.EOF) {
		return false
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16]) == fp.Sum
}

// rotatedNames are the files that may be earlier generations of path.
func rotatedNames(path string) []string {
	dots, _ := filepath.Glob(path + ".*")
	dashes, _ := filepath.Glob(path + "-*")
	matches := append(dots, dashes...)
	var out []string
	for _, m := range matches {
		switch strings.ToLower(filepath.Ext(m)) {
		case ".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".tmp":
			continue
		}
		out = append(out, m)
	}
	return out
}

// findRotated opens the saved file among path's rotated names: the one
// with its inode (renamed) or, failing that, its fingerprint (a copy),
// at least as long as the saved offset; nil if none. current is the inode
// at the path now, which is not it.
func (fl *follower) findRotated(current uint64) *os.File {
	var byPrint *os.File
	for _, name := range rotatedNames(fl.path) {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() || fi.Size() < fl.offset || inodeOf(fi) == current {
			f.Close()
			continue
		}
		if inodeOf(fi) == fl.inode && fl.fp.matches(f) {
			if byPrint != nil {
				byPrint.Close()
			}
			fl.m.Log.Infof("%s: rotated to %s while stopped: reading its tail from offset %d first", fl.path, name, fl.offset)
			return f
		}
		if byPrint == nil && fl.fp.Len > 0 && fl.fp.matches(f) {
			byPrint = f
			fl.m.Log.Infof("%s: copied to %s and truncated: reading the copy's tail from offset %d first", fl.path, name, fl.offset)
			continue
		}
		f.Close()
	}
	return byPrint
}

// atEnd is called at the end of the file being read; it says whether to
// turn to another (closing the current one).
func (fl *follower) atEnd() bool {
	if fl.old {
		if fl.offset != fl.quietAt {
			fl.quietAt, fl.quietSince = fl.offset, time.Now()
			return false
		}
		if time.Since(fl.quietSince) < time.Duration(fl.m.RotateWait) {
			return false
		}
		if len(fl.partial) > 0 {
			fl.st.cut.Incr(1) // the old file ended mid-line: a crash's tail
		}
		fl.m.Log.Infof("%s: done with the rotated file at offset %d: reading the new one from its start", fl.path, fl.offset)
		fl.f.Close()
		fl.f, fl.old, fl.inode, fl.offset, fl.fp, fl.partial, fl.skipping = nil, false, 0, 0, fingerprint{}, nil, false
		return true
	}
	fi, err := os.Stat(fl.path)
	if err != nil || inodeOf(fi) != fl.inode {
		// Renamed away: read on until it has been quiet for rotate_wait.
		fl.old, fl.quietAt, fl.quietSince = true, fl.offset, time.Now()
		return false
	}
	if fi.Size() < fl.offset+int64(len(fl.partial)) || !fl.fp.matches(fl.f) {
		// Truncated (copytruncate): its copy holds what was not read.
		fl.f.Close()
		fl.f = nil
		return true
	}
	return false
}
