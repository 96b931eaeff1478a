package server

import (
	"fmt"

	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/udf"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
	"github.com/udfhost/udfhost/sandbox"
)

// The API's enums and the udf vocabulary have the same numbers; these are
// the only places the two meet, so the layers below never import the
// generated gRPC package.

// abiFromProto reads the ABI a caller asked for; 0 means "choose".
func abiFromProto(a udfhostv1.ABI) (udf.ABI, error) {
	switch a {
	case udfhostv1.ABI_ABI_UNSPECIFIED, udfhostv1.ABI_ABI_DIRECT, udfhostv1.ABI_ABI_BATCH:
		return udf.ABI(a), nil
	}
	return 0, fmt.Errorf("%w: unknown ABI %v", functions.ErrSignature, a)
}

func abiProto(a udf.ABI) udfhostv1.ABI {
	if a == udf.ABIBatch {
		return udfhostv1.ABI_ABI_BATCH
	}
	return udfhostv1.ABI_ABI_DIRECT
}

// specOf is how a worker calls f.
func specOf(f *functions.Function) sandbox.FuncSpec {
	return sandbox.FuncSpec{Export: f.Export, ABI: f.ABI, Args: f.Args, Result: f.Result}
}
