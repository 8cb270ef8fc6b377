package nritest

import (
	"io"
	"net"
	"sync"
)

// proxy stands between plugins and the adaptation's socket. The
// adaptation's Stop leaves external plugins' connections open (a real
// runtime's exit closes them with the process), so the fake runtime cuts
// them here to look like a runtime that went away.
type proxy struct {
	listener net.Listener
	target   string

	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(listen, target string) (*proxy, error) {
	l, err := net.Listen("unix", listen)
	if err != nil {
		return nil, err
	}
	p := &proxy{listener: l, target: target}
	go p.serve()
	return p, nil
}

func (p *proxy) serve() {
	for {
		in, err := p.listener.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("unix", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go pipe(in, out)
		go pipe(out, in)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) close() {
	p.listener.Close()
	p.cut()
}
