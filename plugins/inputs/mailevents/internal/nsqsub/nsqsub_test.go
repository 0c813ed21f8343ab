package nsqsub

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The topic is escaped in the nsqlookupd query: "foo#ephemeral" is asked
// about as it is, not as "foo".
func TestLookupEscapesTopic(t *testing.T) {
	var asked string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = r.URL.Query().Get("topic")
		_, _ = w.Write([]byte(`{"producers":[{"broadcast_address":"127.0.0.1","tcp_port":4150}]}`))
	}))
	defer srv.Close()
	addrs, err := lookup(srv.Client(), srv.URL, "foo#ephemeral")
	require.NoError(t, err)
	require.Equal(t, "foo#ephemeral", asked)
	require.Equal(t, []string{"127.0.0.1:4150"}, addrs)
}

// An endless nsqlookupd answer is read up to maxLookupBytes, not held
// whole.
func TestLookupAnswerBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"producers":[{"broadcast_address":"`))
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range 64 { // 4 MiB of one string
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	_, err := lookup(srv.Client(), srv.URL, "t")
	require.ErrorContains(t, err, "at most 1048576 bytes")
}

// A handshake frame announcing more than maxHandshakeFrame is refused
// before anything is allocated for it.
func TestHandshakeFrameCapped(t *testing.T) {
	var frame bytes.Buffer
	_ = binary.Write(&frame, binary.BigEndian, uint32(2<<30))
	_ = binary.Write(&frame, binary.BigEndian, int32(0))
	_, err := readFrame(&frame)
	require.ErrorContains(t, err, "bad handshake frame size 2147483648")

	frame.Reset()
	_ = binary.Write(&frame, binary.BigEndian, uint32(4+2))
	_ = binary.Write(&frame, binary.BigEndian, int32(0))
	frame.WriteString("OK")
	data, err := readFrame(&frame)
	require.NoError(t, err)
	require.Equal(t, "OK", string(data))
}

// Closing a session whose peer stopped reading ends its writer: Stop and
// the reconnect never hang on it.
func TestCloseEndsBlockedWriter(t *testing.T) {
	ours, peer := net.Pipe() // unbuffered: every write blocks until the peer reads
	defer peer.Close()
	sess := newSession(ours, negotiated{maxRdy: 2500, msgTimeout: time.Minute})
	done := make(chan error, 1)
	go func() { done <- sess.writeLoop() }()
	sess.send(command{op: opFin})
	one := make([]byte, 1)
	_, err := peer.Read(one) // the writer is now inside its write, blocked
	require.NoError(t, err)
	sess.close()
	select {
	case err := <-done:
		require.Error(t, err, "the write deadline ends the blocked write")
	case <-time.After(30 * time.Second):
		t.Fatal("the writer is still blocked after close")
	}
}
