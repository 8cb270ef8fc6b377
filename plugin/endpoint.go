package plugin

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// endpoint is an HTTP server whose address follows the configuration in
// force. A change of address is made in two steps, so that apply can open
// every listener a configuration asks for before it changes anything.
type endpoint struct {
	mu    sync.Mutex
	addr  string // as configured
	bound string // the listener's address (a port 0 resolved)
	srv   *http.Server
}

// move is a change of an endpoint's address, its listener open, not made yet.
type move struct {
	e    *endpoint
	same bool
	addr string
	l    net.Listener // nil: serve nothing
}

// prepare opens the listener for addr ("" for none).
func (e *endpoint) prepare(addr string) (*move, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if addr == e.addr {
		return &move{e: e, same: true}, nil
	}
	m := &move{e: e, addr: addr}
	if addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		m.l = l
	}
	return m, nil
}

// abort closes the listener a move opened.
func (m *move) abort() {
	if m != nil && m.l != nil {
		_ = m.l.Close()
	}
}

// commit serves h on the new listener and stops the old server. It says
// where serving started and stopped ("" for nowhere), for the log.
func (m *move) commit(h http.Handler) (started, stopped string) {
	if m.same {
		return "", ""
	}
	e := m.e
	e.mu.Lock()
	defer e.mu.Unlock()
	var srv *http.Server
	if m.l != nil {
		srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(m.l) }()
		started = m.l.Addr().String()
	}
	if e.srv != nil {
		_ = e.srv.Close()
		stopped = e.addr
	}
	e.addr, e.srv, e.bound = m.addr, srv, started
	return started, stopped
}

// address is where the endpoint serves now, "" for nowhere.
func (e *endpoint) address() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bound
}
