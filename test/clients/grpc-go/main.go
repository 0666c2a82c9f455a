// isthmus-xds-client-go: a proxyless grpc-go xDS client for the integration tests (the 'go'
// kind of test/helpers/proxyless.ts, whose header documents the contract). grpc-go reads the
// bootstrap JSON from GRPC_XDS_BOOTSTRAP_CONFIG itself; this program only serves, on
// 127.0.0.1:<free port>,
//
//	GET /call?target=xds:///HOST:PORT&n=N&timeoutMs=T[&header=name:value]...
//
// making N unary /isthmus.test.Echo/Call calls on one grpc.ClientConn per target (created on
// first use, kept for later requests) and answering
// {"counts": {backend: n, "!error": n}, "errors": [up to 3 "CODE_NAME: message"]}.
// It prints "PORT <n>" once it listens and exits 0 on SIGTERM.
//
// There is no protoc on the build machine, so the two messages of test/fixtures/echo.proto
// are encoded by hand with protowire, through a small grpc codec (echoCodec below).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and the xDS balancers
)

// echoRequest is isthmus.test.EchoRequest: string message = 1.
type echoRequest struct{ message string }

// echoReply is isthmus.test.EchoReply: string message = 1; string backend = 2.
type echoReply struct{ message, backend string }

// echoCodec marshals the two Echo messages in the protobuf wire format. It is named "proto"
// so the content-type stays application/grpc+proto, and set as every call's codec with
// grpc.ForceCodec (the v1 encoding.Codec interface: []byte in and out).
type echoCodec struct{}

func (echoCodec) Name() string { return "proto" }

func (echoCodec) Marshal(v any) ([]byte, error) {
	req, ok := v.(*echoRequest)
	if !ok {
		return nil, fmt.Errorf("echoCodec: cannot marshal %T", v)
	}
	var b []byte
	if req.message != "" { // proto3: a default-valued scalar is not sent
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, req.message)
	}
	return b, nil
}

func (echoCodec) Unmarshal(data []byte, v any) error {
	rep, ok := v.(*echoReply)
	if !ok {
		return fmt.Errorf("echoCodec: cannot unmarshal into %T", v)
	}
	*rep = echoReply{}
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			s, m := protowire.ConsumeString(data)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if num == 1 {
				rep.message = s
			} else {
				rep.backend = s
			}
			data = data[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, data) // unknown field: skip it
		if m < 0 {
			return protowire.ParseError(m)
		}
		data = data[m:]
	}
	return nil
}

// conns holds one ClientConn per target, created on first use and reused afterwards.
var (
	connsMu sync.Mutex
	conns   = map[string]*grpc.ClientConn{}
)

func connFor(target string) (*grpc.ClientConn, error) {
	connsMu.Lock()
	defer connsMu.Unlock()
	if cc, ok := conns[target]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(echoCodec{})))
	if err != nil {
		return nil, err
	}
	conns[target] = cc
	return cc, nil
}

// codeNames are the canonical gRPC status code names (codes.Code.String() is CamelCase
// and spells Canceled with one L).
var codeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// errorText is "CODE_NAME: message", e.g. "DEADLINE_EXCEEDED: context deadline exceeded".
func errorText(err error) string {
	st := status.Convert(err)
	name := st.Code().String() // "Code(N)" for a code outside the table
	if int(st.Code()) < len(codeNames) {
		name = codeNames[st.Code()]
	}
	return name + ": " + st.Message()
}

type tally struct {
	Counts map[string]int `json:"counts"`
	Errors []string       `json:"errors"`
}

func handleCall(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	target := q.Get("target")
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		n = 1
	}
	timeoutMs, err := strconv.Atoi(q.Get("timeoutMs"))
	if err != nil || timeoutMs <= 0 {
		timeoutMs = 3000
	}
	md := metadata.MD{}
	for _, h := range q["header"] {
		if i := strings.IndexByte(h, ':'); i > 0 {
			md.Append(strings.ToLower(h[:i]), h[i+1:])
		}
	}
	t := tally{Counts: map[string]int{}, Errors: []string{}}
	fail := func(err error) {
		t.Counts["!error"]++
		if len(t.Errors) < 3 {
			t.Errors = append(t.Errors, errorText(err))
		}
	}
	cc, err := connFor(target)
	for i := 0; i < n; i++ {
		if err != nil { // the target did not parse: every call fails the same way
			fail(err)
			continue
		}
		ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(r.Context(), md), time.Duration(timeoutMs)*time.Millisecond)
		var rep echoReply
		callErr := cc.Invoke(ctx, "/isthmus.test.Echo/Call", &echoRequest{message: "hi"}, &rep)
		cancel()
		if callErr != nil {
			fail(callErr)
		} else {
			t.Counts[rep.backend]++
		}
	}
	w.Header().Set("content-type", "application/json")
	_ = json.NewEncoder(w).Encode(t)
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/call", handleCall)
	srv := &http.Server{Handler: mux}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	// os.Stdout is unbuffered: the line is out as soon as Printf returns.
	fmt.Printf("PORT %d\n", ln.Addr().(*net.TCPAddr).Port)

	select {
	case err := <-served:
		log.Fatalf("serve: %v", err)
	case <-stop:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx) // lets in-flight /call requests finish, within the grace period
	connsMu.Lock()
	for _, cc := range conns {
		_ = cc.Close()
	}
	connsMu.Unlock()
}
