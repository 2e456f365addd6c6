package core

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// signal is a broadcast: wait returns a channel that is closed by the next
// broadcast.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) broadcast() {
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

// poller wakes waiting claimers when another process commits: while at least
// one claim waits, it reads PRAGMA data_version every WakePollInterval (a
// read of the WAL index in shared memory, no disk I/O). With no waiter it
// sleeps on a channel and costs nothing.
type poller struct {
	st       store
	sig      *signal
	interval time.Duration
	waiters  atomic.Int64
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
}

func newPoller(st store, sig *signal, interval time.Duration) *poller {
	p := &poller{st: st, sig: sig, interval: interval, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *poller) addWaiter() {
	if p.waiters.Add(1) == 1 {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

func (p *poller) removeWaiter() { p.waiters.Add(-1) }

func (p *poller) loop() {
	defer close(p.done)
	var last int64 = -1
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		if p.waiters.Load() == 0 {
			last = -1
			select {
			case <-p.kick:
			case <-p.stop:
				return
			}
			// Take a baseline, then wake the waiters once: a commit that
			// landed before the baseline is seen by that retry, a later one
			// by the next poll.
			if v, err := p.st.changeCounter(context.Background()); err == nil {
				last = v
			}
			p.sig.broadcast()
		}
		select {
		case <-t.C:
		case <-p.stop:
			return
		}
		v, err := p.st.changeCounter(context.Background())
		if err != nil {
			continue
		}
		if last >= 0 && v != last {
			p.sig.broadcast()
		}
		last = v
	}
}

func (p *poller) close() {
	close(p.stop)
	<-p.done
}
