// Package wasmscan walks a WebAssembly binary before anything else reads
// it. It runs in the host process, on the bytes of an upload, and trusts
// nothing in them: every count and length must be backed by bytes that
// are there, every section must agree with its declared size, and the
// module must stay within implementation limits that bound what wazero's
// decoder allocates, what its optimizing compiler spends and what each
// instance of the module allocates outside its linear memory.
//
// Scan is the walk; the Module it returns has what the host needs to know
// of a module without compiling it: its imports, exports and function
// types, and the estimate of what compiling its code costs. It follows
// the grammar of wazero v1.12's decoder (internal/wasm/binary: one
// function a section, as here) but does not validate types or code:
// wazero does that afterwards, out of the host process, on input whose
// sizes are now known to be sane. It depends on the standard library
// alone.
package wasmscan
