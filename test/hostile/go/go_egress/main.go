// Command go_egress is a hostile connector: its one export sends whatever
// request the row asks for through the host's egress broker, so the
// security suite can try, case by case, what a connector must not do (a
// connection it is not bound to, a method its grant does not name, a
// write from a private environment to a public cluster, a Host or
// Authorization header of its own, a path with tricks, a flood) and what
// must fail without harm (an oversize response, a slow destination).
//
//	ask(conn, method, path, header VARCHAR) -> VARCHAR
//
// header is "" or "Name: value". A POST, PUT or PATCH carries the body
// "sectest-body". The answer is "STATUS BODYLEN"; a refusal or failure is
// that row's error, "CODE: the host's explanation" (CODE denied, failed,
// overloaded, bad-request).
package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/udfhost/udfhost/guest"
)

//go:wasmexport ask
func ask(ptr, n uint32) uint64 {
	return guest.CallRows(ptr, n, guest.Varchar, func(in *guest.Batch, row int, out *guest.Result) error {
		if err := in.CheckArgs(guest.Varchar, guest.Varchar, guest.Varchar, guest.Varchar); err != nil {
			return err
		}
		req := &guest.Request{Conn: in.Col(0).String(row), Method: in.Col(1).String(row), Path: in.Col(2).String(row)}
		if h := in.Col(3).String(row); h != "" {
			name, value, _ := strings.Cut(h, ":")
			req.Header = [][2]string{{name, strings.TrimSpace(value)}}
		}
		switch req.Method {
		case "POST", "PUT", "PATCH":
			req.Body = []byte("sectest-body")
		}
		resp, err := guest.Do(req)
		if err != nil {
			var he *guest.HTTPError
			if errors.As(err, &he) {
				return errors.New(codeName(he.Code) + ": " + he.Msg)
			}
			return err
		}
		out.SetString(row, strconv.Itoa(resp.Status)+" "+strconv.Itoa(len(resp.Body)))
		return nil
	})
}

func codeName(code int) string {
	switch code {
	case guest.CodeDenied:
		return "denied"
	case guest.CodeFailed:
		return "failed"
	case guest.CodeOverloaded:
		return "overloaded"
	case guest.CodeBadRequest:
		return "bad-request"
	}
	return "code " + strconv.Itoa(code)
}

func main() {}
