// Package wire is the protocol between the host and a worker process, the
// one thing both sides of the process boundary share: frames on the
// socketpair (fd 3 in the worker), the call header that carries a FuncSpec
// with every batch, the load and loaded messages, the compilation-cache
// descriptors passed ahead of the load frame, the vocabulary of the
// worker's reports (Layer, Probe), and the one exchange the worker starts:
// a guest's HTTP request during a call (KindEgress) and the host's answer
// (KindEgressReply), egress.go.
//
// It runs in both processes and trusts neither: every reader bounds what
// it allocates (MaxFrame, or the host's tighter limit through
// ReadFrameMax and ReadFrameLimits, MaxCacheFDs, MaxCacheBytes, the
// MaxEgress* bounds) and checks lengths against
// what it received. What a decoded message means is for each side to
// judge: the host (package sandbox) trusts nothing a worker sends; the
// worker trusts the host's frames.
package wire
