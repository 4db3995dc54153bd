package activities

import "context"

// The lease of the state lock a step's Terraform holds on the server.
//
// The server takes a task's state lock away only once it has gone
// store.StateLockLease + store.StateLockMargin without a renewal (see
// package server): while the step's command holds the lock, the runner
// renews it at every heartbeat tick through the step's route of the state
// proxy, which remembers the lock request the server accepted
// (stateproxy.go).

// renewStateLock renews the lease of the state lock the step's Terraform
// holds on the server (openRoute.renewLock). held is false, with a nil
// error, when it holds none, or the step has no route to the server's state
// backend (a local or its own backend, or the step has finished); err is
// not nil when the server refused the renewal (the lock was taken over,
// released or broken) or could not be reached.
func (s *stepRun) renewStateLock(ctx context.Context) (held bool, err error) {
	s.mu.Lock()
	base := s.proxyBase
	s.mu.Unlock()
	if base == "" {
		return false, nil
	}
	p, err := s.r.stateProxy()
	if err != nil {
		return false, nil // no proxy, no route (not reached: base is set)
	}
	route := p.route(base)
	if route == nil {
		return false, nil // closed at the step's finish
	}
	return route.renewLock(ctx)
}
