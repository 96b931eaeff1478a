package sectest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// Attacks on the pre-signed upload URLs: each asks for a URL for the
// case's module and then misuses it.

// presigned asks for an upload URL for the case's module.
func (cr *caseRun) presigned(ctx context.Context, ttl int64) ([]byte, *udfhostv1.CreateUploadURLResponse, error) {
	data, err := cr.module("")
	if err != nil {
		return nil, nil, err
	}
	up, err := cr.r.api.requestURL(ctx, strings.ReplaceAll("st-"+cr.r.id+"-"+cr.c.Name, "_", "-"), data, ttl)
	if err != nil {
		return nil, nil, err
	}
	cr.set("upload", "upload/"+up.UploadId)
	return data, up, nil
}

// putOutcome runs a PUT and reports its answer; any 2xx means the attack
// got through.
func (cr *caseRun) putOutcome(ctx context.Context, rawURL string, headers map[string]string, body []byte) outcome {
	res := put(ctx, rawURL, headers, bytes.NewReader(body), int64(len(body)))
	cr.set("local", res.local)
	if res.err == nil && res.status/100 == 2 {
		return outcome{msg: fmt.Sprintf("PUT accepted: %d %s", res.status, res.msg)}
	}
	f := res.failure()
	return outcome{stage: f.stage, code: f.code, msg: f.msg}
}

// commitRefused adds a failure to o unless committing the upload now fails:
// whatever the attack did must not leave a committable upload behind.
func (cr *caseRun) commitRefused(ctx context.Context, o *outcome, uploadID string) {
	art, err := cr.r.api.art.CommitUpload(ctx, &udfhostv1.CommitUploadRequest{UploadId: uploadID})
	if err == nil {
		o.fails = append(o.fails, "the upload could still be committed as "+art.Id)
		cr.later(func(ctx context.Context) {
			cr.r.api.art.DeleteArtifact(ctx, &udfhostv1.DeleteArtifactRequest{Id: art.Id})
		})
	}
}

// urlDeclaredTooLarge asks for a URL for more than the artifact size limit
// (params.size bytes).
func urlDeclaredTooLarge(ctx context.Context, cr *caseRun) outcome {
	size, _ := strconv.ParseInt(cr.c.Params["size"], 10, 64)
	_, err := cr.r.api.art.CreateUploadURL(ctx, &udfhostv1.CreateUploadURLRequest{
		Kind: udfhostv1.ArtifactKind_ARTIFACT_KIND_UDF, Env: "default", Size: size, Sha256: strings.Repeat("ab", 32),
	})
	if err != nil {
		return refused(grpcFailure("url", err))
	}
	return outcome{msg: fmt.Sprintf("a URL for %d bytes was issued", size)}
}

// urlSHAMismatch sends other bytes of the declared size.
func urlSHAMismatch(ctx context.Context, cr *caseRun) outcome {
	data, up, err := cr.presigned(ctx, 0)
	if err != nil {
		return refused(err)
	}
	other := bytes.Clone(data)
	other[len(other)-1] ^= 0xff
	o := cr.putOutcome(ctx, up.Url, up.Headers, other)
	cr.commitRefused(ctx, &o, up.UploadId)
	return o
}

// urlBodyTooLarge sends more bytes than declared.
func urlBodyTooLarge(ctx context.Context, cr *caseRun) outcome {
	data, up, err := cr.presigned(ctx, 0)
	if err != nil {
		return refused(err)
	}
	o := cr.putOutcome(ctx, up.Url, up.Headers, append(bytes.Clone(data), make([]byte, 1<<20)...))
	cr.commitRefused(ctx, &o, up.UploadId)
	return o
}

// tamper changes one query parameter of a URL.
func tamper(rawURL string, fn func(q url.Values)) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	fn(q)
	u.RawQuery = q.Encode()
	return u.String()
}

// urlTamperedSignature flips one character of the URL's signature.
func urlTamperedSignature(ctx context.Context, cr *caseRun) outcome {
	data, up, err := cr.presigned(ctx, 0)
	if err != nil {
		return refused(err)
	}
	forged := forgeSignature(up.Url)
	if forged == up.Url {
		return outcome{code: "error", msg: "no signature parameter found in " + redact(up.Url)}
	}
	o := cr.putOutcome(ctx, forged, up.Headers, data)
	cr.commitRefused(ctx, &o, up.UploadId)
	return o
}

// forgeSignature changes one character of rawURL's signature parameter
// to another hex digit, so the URL is well-formed and only its signature
// is wrong (a non-hex character would make it malformed instead). It
// returns rawURL unchanged if it has no signature parameter.
func forgeSignature(rawURL string) string {
	return tamper(rawURL, func(q url.Values) {
		for k, v := range q {
			if strings.Contains(strings.ToLower(k), "signature") && len(v) == 1 && v[0] != "" {
				b := []byte(v[0])
				if b[0] == '0' {
					b[0] = '1'
				} else {
					b[0] = '0'
				}
				q.Set(k, string(b))
			}
		}
	})
}

// urlTamperedSize raises the size the URL allows and sends that many bytes.
func urlTamperedSize(ctx context.Context, cr *caseRun) outcome {
	data, up, err := cr.presigned(ctx, 0)
	if err != nil {
		return refused(err)
	}
	big := append(bytes.Clone(data), make([]byte, 4096)...)
	forged := tamper(up.Url, func(q url.Values) {
		for k := range q {
			if strings.HasSuffix(strings.ToLower(k), "size") {
				q.Set(k, strconv.Itoa(len(big)))
			}
		}
	})
	o := cr.putOutcome(ctx, forged, up.Headers, big)
	cr.commitRefused(ctx, &o, up.UploadId)
	return o
}

// urlExpired uses a one-second URL two seconds later.
func urlExpired(ctx context.Context, cr *caseRun) outcome {
	data, up, err := cr.presigned(ctx, 1)
	if err != nil {
		return refused(err)
	}
	time.Sleep(time.Until(up.ExpiresAt.AsTime().Add(1100 * time.Millisecond)))
	o := cr.putOutcome(ctx, up.Url, up.Headers, data)
	cr.commitRefused(ctx, &o, up.UploadId)
	return o
}

// urlReused replays a URL that was already used successfully.
func urlReused(ctx context.Context, cr *caseRun) outcome {
	data, up, err := cr.presigned(ctx, 0)
	if err != nil {
		return refused(err)
	}
	if res := put(ctx, up.Url, up.Headers, bytes.NewReader(data), int64(len(data))); res.err != nil || res.status/100 != 2 {
		return outcome{code: "error", msg: "the first, legitimate PUT failed: " + res.failure().Error()}
	}
	o := cr.putOutcome(ctx, up.Url, up.Headers, data)
	// The replay must not have disturbed the legitimate upload.
	art, err := cr.r.api.art.CommitUpload(ctx, &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
	if err != nil {
		o.fails = append(o.fails, "the legitimate upload no longer commits: "+err.Error())
	} else {
		cr.later(func(ctx context.Context) {
			cr.r.api.art.DeleteArtifact(ctx, &udfhostv1.DeleteArtifactRequest{Id: art.Id})
		})
	}
	return o
}

// uploadSlowloris announces the module's size, sends half of it and
// stalls: the server must drop the connection within params.stall_s
// seconds instead of holding it (and the one-use URL) forever.
func uploadSlowloris(ctx context.Context, cr *caseRun) outcome {
	data, up, err := cr.presigned(ctx, 0)
	if err != nil {
		return refused(err)
	}
	stall := seconds(cr.c.Params["stall_s"], 12)
	u, err := url.Parse(up.Url)
	if err != nil {
		return refused(err)
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return refused(err)
	}
	defer c.Close()
	cr.set("local", c.LocalAddr().String())
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/wasm\r\nContent-Length: %d\r\n\r\n", u.RequestURI(), u.Host, len(data))
	c.Write(data[:len(data)/2])
	t0 := time.Now()
	c.SetReadDeadline(t0.Add(stall))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	took := time.Since(t0)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		o := outcome{msg: fmt.Sprintf("the server still held the half-sent upload open after %s", stall)}
		c.Close() // now, so the server can clean up before the audit check
		return o
	case err != nil:
		o := outcome{stage: "put", code: "closed", msg: err.Error(), took: took}
		cr.commitRefused(ctx, &o, up.UploadId)
		return o
	}
	resp.Body.Close()
	o := outcome{stage: "put", code: fmt.Sprintf("HTTP %d", resp.StatusCode), took: took}
	cr.commitRefused(ctx, &o, up.UploadId)
	return o
}

func seconds(s string, def float64) time.Duration {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		v = def
	}
	return time.Duration(v * float64(time.Second))
}

// redact drops a URL's query, which holds its signature.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery = ""
	return u.String()
}
