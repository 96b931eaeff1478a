// Package s3store is the host side of the S3 object store: pre-signed
// upload and download URLs, and the few object operations the host needs
// (head, get, copy, delete, conditional small-record writes) on keys the
// host chooses, under a fixed prefix of one bucket.
//
// It runs in the host process and trusts the bucket's answers no more
// than a disk: sizes and digests are checked by its callers. Conditional
// requests (If-None-Match, If-Match on ETags) make a lost race between two
// hosts a sentinel error instead of a silent overwrite.
package s3store
