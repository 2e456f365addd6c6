package core

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy is exponential backoff with jitter:
// delay = min(Base * 2^(attempt-1) * (1 + Jitter*u), Cap), u uniform in [-1, 1).
// The cap applies after jitter, so no delay ever exceeds Cap.
type RetryPolicy struct {
	Base   time.Duration // default 1s
	Cap    time.Duration // default 5m
	Jitter float64       // fraction in [0, 1], default 0.2
}

// DefaultRetryPolicy: base 1 s, cap 5 min, jitter 20 %.
var DefaultRetryPolicy = RetryPolicy{Base: time.Second, Cap: 5 * time.Minute, Jitter: 0.2}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Base <= 0 {
		p.Base = DefaultRetryPolicy.Base
	}
	if p.Cap <= 0 {
		p.Cap = DefaultRetryPolicy.Cap
	}
	if p.Jitter < 0 {
		p.Jitter = 0
	}
	if p.Jitter > 1 {
		p.Jitter = 1
	}
	return p
}

// Backoff returns the delay before the retry that follows failed attempt
// number attempt (1-based). u in [-1, 1) is the jitter draw; Backoff draws it
// when u is nil.
func (p RetryPolicy) Backoff(attempt int64, u *float64) time.Duration {
	p = p.withDefaults()
	if attempt < 1 {
		attempt = 1
	}
	d := float64(p.Base)
	for i := int64(1); i < attempt && d < float64(p.Cap)*2; i++ {
		d *= 2
	}
	j := 0.0
	if u != nil {
		j = *u
	} else {
		j = rand.Float64()*2 - 1
	}
	d *= 1 + p.Jitter*j
	if d > float64(p.Cap) {
		d = float64(p.Cap)
	}
	if d < 0 {
		d = 0
	}
	return time.Duration(d)
}

// forTask applies a task's overrides.
func (p RetryPolicy) forTask(base, cap time.Duration) RetryPolicy {
	if base > 0 {
		p.Base = base
	}
	if cap > 0 {
		p.Cap = cap
	}
	return p
}
