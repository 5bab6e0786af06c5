// extproc-min: the smallest ext_proc server, a baseline for `npm run bench` (pass-through case).
//
// It answers every request_headers message at once with CONTINUE and the same mode_override
// sagamesh sends for a request that matches no saga (skip everything else), and ends the call when
// Envoy half-closes. What Envoy's ingress costs with it is what one ext_proc exchange costs on the
// box, whatever the server does: sagamesh's pass-through figures are read against it.
// Built by bench/setup.sh from the Go module proxy (go-control-plane, grpc-go; pinned in go.mod).
package main

import (
	"flag"
	"io"
	"log"
	"net"

	procv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

var passThrough = &procv3.ProcessingMode{
	RequestHeaderMode:   procv3.ProcessingMode_SKIP,
	ResponseHeaderMode:  procv3.ProcessingMode_SKIP,
	RequestBodyMode:     procv3.ProcessingMode_NONE,
	ResponseBodyMode:    procv3.ProcessingMode_NONE,
	RequestTrailerMode:  procv3.ProcessingMode_SKIP,
	ResponseTrailerMode: procv3.ProcessingMode_SKIP,
}

type server struct {
	extprocv3.UnimplementedExternalProcessorServer
}

func (server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil // Envoy half-closed: end the call with OK
		}
		if err != nil {
			return err
		}
		if req.GetRequestHeaders() == nil {
			continue
		}
		err = stream.Send(&extprocv3.ProcessingResponse{
			Response: &extprocv3.ProcessingResponse_RequestHeaders{
				RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{}},
			},
			ModeOverride: passThrough,
		})
		if err != nil {
			return err
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50071", "listen address (loopback)")
	flag.Parse()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(s, server{})
	log.Printf("extproc-min listening on %s", lis.Addr())
	log.Fatal(s.Serve(lis))
}
