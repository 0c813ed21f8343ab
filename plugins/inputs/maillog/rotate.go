package maillog

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
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
//     copy, with copytruncate). Its unread tail is read first, then the
//     rotated files written after it (oldest first: more than one rotation
//     while the agent was down, or a rename followed by a copytruncate),
//     then the path.

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

// successors are the rotated names of the path written after old (the
// saved file, found rotated) and that are not it nor a copy of it, nor
// the file at the path (inode current), oldest first: what the path held
// between old's rotation and now, rotated in turn while the agent was
// down.
func (fl *follower) successors(old *os.File, current uint64) []string {
	ofi, err := old.Stat()
	if err != nil {
		return nil
	}
	type gen struct {
		name string
		mod  time.Time
	}
	var gens []gen
	for _, name := range rotatedNames(fl.path) {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		copyOfOld := err == nil && fl.fp.Len > 0 && fl.fp.matches(f)
		f.Close()
		if err != nil || !fi.Mode().IsRegular() || copyOfOld || os.SameFile(fi, ofi) ||
			inodeOf(fi) == current || fi.ModTime().Before(ofi.ModTime()) {
			continue
		}
		gens = append(gens, gen{name, fi.ModTime()})
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i].mod.Before(gens[j].mod) })
	names := make([]string, len(gens))
	for i, g := range gens {
		names[i] = g.name
	}
	return names
}

// openNext opens the next of the successors from its start, as a rotated
// file; false when none is left (or can be opened).
func (fl *follower) openNext() bool {
	for len(fl.next) > 0 {
		name := fl.next[0]
		fl.next = fl.next[1:]
		f, err := os.Open(name)
		if err != nil {
			fl.m.Log.Warnf("%s: the rotated file %s went away before it was read: %v", fl.path, name, err)
			fl.st.lost.Incr(1)
			continue
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			continue
		}
		fp, _ := fingerprintOf(f)
		fl.m.Log.Infof("%s: reading %s, rotated while stopped, from its start", fl.path, name)
		fl.f, fl.inode, fl.offset, fl.fp, fl.partial, fl.skipping = f, inodeOf(fi), 0, fp, nil, false
		fl.old, fl.quietAt, fl.quietSince = true, -1, time.Now()
		fl.base, fl.baseOff = time.Now(), 0
		return true
	}
	return false
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
		fl.f.Close()
		if fl.openNext() {
			return true
		}
		fl.m.Log.Infof("%s: done with the rotated file at offset %d: reading the new one from its start", fl.path, fl.offset)
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
