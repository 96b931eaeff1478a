package loadgen

import udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"

const (
	tInt     = udfhostv1.Type_TYPE_INT
	tBigint  = udfhostv1.Type_TYPE_BIGINT
	tFloat   = udfhostv1.Type_TYPE_FLOAT
	tDouble  = udfhostv1.Type_TYPE_DOUBLE
	tBool    = udfhostv1.Type_TYPE_BOOLEAN
	tVarchar = udfhostv1.Type_TYPE_VARCHAR
	tBytes   = udfhostv1.Type_TYPE_BYTES
)
