package functions

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/internal/udf"
)

// batchShape is the wasm type of every batch-ABI export: (in_ptr, in_len) ->
// (out_len << 32 | out_ptr).
var batchParams, batchResults = []string{"i32", "i32"}, []string{"i64"}

// ChooseABI picks and checks the ABI for calling export of art with the
// given SQL types. want is 0 for automatic: the
// batch ABI when the module declares it and the export has its shape.
func ChooseABI(art *artifacts.Artifact, export string, args []udf.Type, result udf.Type, want udf.ABI) (udf.ABI, error) {
	var ex *artifacts.Export
	for i := range art.Exports {
		if art.Exports[i].Name == export {
			ex = &art.Exports[i]
		}
	}
	if ex == nil {
		return 0, fmt.Errorf("%w: artifact %s has no export %q (exports: %s)", ErrSignature, art.ID, export, exportNames(art))
	}
	isBatchShape := slices.Equal(ex.Params, batchParams) && slices.Equal(ex.Results, batchResults)
	if want == 0 {
		want = udf.ABIDirect
		if art.ABIVersion == 1 && isBatchShape {
			want = udf.ABIBatch
		}
	}
	switch want {
	case udf.ABIBatch:
		if art.ABIVersion != 1 {
			return 0, fmt.Errorf("%w: artifact %s does not implement the batch ABI (exports no udfhost_abi_version/udfhost_alloc)", ErrSignature, art.ID)
		}
		if !isBatchShape {
			return 0, fmt.Errorf("%w: export %q has wasm type %s; the batch ABI needs (i32, i32) -> i64", ErrSignature, export, wasmSig(ex.Params, ex.Results))
		}
		return udf.ABIBatch, nil
	case udf.ABIDirect:
		needParams := make([]string, len(args))
		for i, t := range args {
			wt := api.ValueType(t.DirectWasmType())
			if wt == 0 {
				return 0, fmt.Errorf("%w: argument %d is %s, which the direct ABI cannot pass; use the batch ABI (guest SDK)", ErrSignature, i+1, t)
			}
			needParams[i] = api.ValueTypeName(wt)
		}
		rt := api.ValueType(result.DirectWasmType())
		if rt == 0 {
			return 0, fmt.Errorf("%w: result is %s, which the direct ABI cannot return; use the batch ABI (guest SDK)", ErrSignature, result)
		}
		needResults := []string{api.ValueTypeName(rt)}
		if !slices.Equal(ex.Params, needParams) || !slices.Equal(ex.Results, needResults) {
			return 0, fmt.Errorf("%w: signature %s expects export %q to have wasm type %s, but it has %s",
				ErrSignature, FormatSignature(args, result), export, wasmSig(needParams, needResults), wasmSig(ex.Params, ex.Results))
		}
		return udf.ABIDirect, nil
	}
	return 0, fmt.Errorf("%w: unknown ABI %v", ErrSignature, want)
}

func wasmSig(params, results []string) string {
	return "(" + strings.Join(params, ", ") + ") -> " + strings.Join(results, ", ")
}

func exportNames(art *artifacts.Artifact) string {
	names := make([]string, len(art.Exports))
	for i, e := range art.Exports {
		names[i] = e.Name
	}
	return strings.Join(names, ", ")
}
