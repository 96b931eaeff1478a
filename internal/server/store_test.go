package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStore(t *testing.T) {
	tests := []struct {
		cfg     Config
		want    string // the store's name; "" when refused
		wantErr string
	}{
		{cfg: Config{}, want: "local"},
		{cfg: Config{Store: "local"}, want: "local"},
		{cfg: Config{Store: "s3://udfhost-artifacts"}, want: "s3://udfhost-artifacts/"},
		{cfg: Config{Store: "s3://udfhost-artifacts/"}, want: "s3://udfhost-artifacts/"},
		{cfg: Config{Store: "s3://b12/pool/eu-1/", S3Endpoint: "http://127.0.0.1:7070", S3Region: "us-east-1", S3PathStyle: true}, want: "s3://b12/pool/eu-1/"},
		{cfg: Config{Store: "/var/lib/udfhost"}, wantErr: "--store \"/var/lib/udfhost\": want s3://BUCKET[/PREFIX]"},
		{cfg: Config{Store: "s3:/b12"}, wantErr: "--store \"s3:/b12\": want s3://"},
		{cfg: Config{Store: "s3://"}, wantErr: "bucket \"\" is not an S3 bucket name"},
		{cfg: Config{Store: "s3://Upper"}, wantErr: "bucket \"Upper\" is not an S3 bucket name"},
		{cfg: Config{Store: "s3://b12/a//b"}, wantErr: "prefix segment \"\""},
		{cfg: Config{Store: "s3://b12/a/../b"}, wantErr: "prefix segment \"..\""},
		{cfg: Config{Store: "s3://b12", S3Endpoint: "127.0.0.1:7070"}, wantErr: "--s3-endpoint \"127.0.0.1:7070\": want http(s)://HOST[:PORT]"},
		{cfg: Config{Store: "s3://b12", S3Endpoint: "ftp://x"}, wantErr: "--s3-endpoint"},
		{cfg: Config{Store: "s3://b12", S3Region: "US East"}, wantErr: "--s3-region \"US East\""},
		{cfg: Config{S3Endpoint: "http://127.0.0.1:7070"}, wantErr: "--s3-endpoint needs --store s3://"},
		{cfg: Config{S3PathStyle: true}, wantErr: "--s3-path-style needs --store s3://"},
	}
	for _, tc := range tests {
		sp, err := parseStore(tc.cfg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("parseStore(%+v) = %v, want one line containing %q", tc.cfg, err, tc.wantErr)
			}
			continue
		}
		if err != nil || sp.String() != tc.want {
			t.Errorf("parseStore(%+v) = %v, %v; want %s", tc.cfg, sp, err, tc.want)
		}
	}
}

// TestBadStoreLeavesNoDataDir: a store flag that cannot work stops Start
// before the data directory is created.
func TestBadStoreLeavesNoDataDir(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := New(Config{DataDir: data, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Store: "s3//bucket"})
	err := s.Start(context.Background())
	if err == nil {
		s.Shutdown(context.Background())
	}
	if err == nil || !strings.Contains(err.Error(), "--store") {
		t.Fatalf("start: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the refused start left %s behind (%v)", data, err)
	}
}
