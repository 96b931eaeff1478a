// Package benchsuite holds the reference benchmarks the service is measured
// against: the same UDF as native Go and as a module run in-process by
// plain wazero. `make bench` runs them beside the end-to-end figures.
package benchsuite
