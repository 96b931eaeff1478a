package loadgen

import udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"

const (
	tInt     = udfhostv1.SqlType_TYPE_INT
	tBigint  = udfhostv1.SqlType_TYPE_BIGINT
	tFloat   = udfhostv1.SqlType_TYPE_FLOAT
	tDouble  = udfhostv1.SqlType_TYPE_DOUBLE
	tBool    = udfhostv1.SqlType_TYPE_BOOLEAN
	tVarchar = udfhostv1.SqlType_TYPE_VARCHAR
	tBytes   = udfhostv1.SqlType_TYPE_BYTES
)
