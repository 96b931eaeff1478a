package sandbox

// InFlight is how many calls were sent to the worker and not yet
// answered: the pod registry evicts only workers with none.
func (w *Worker) InFlight() int { return len(w.inFlight) }
