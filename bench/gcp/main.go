// The go-control-plane peer for bench/run.ts: serves the bench model (S services × E
// endpoints, the same names and shapes Isthmus generates for an explicit-mode Envoy; see
// bench/gcp/dump-isthmus.ts) over SotW and Delta ADS from go-control-plane's caches, one
// state shared by every node. Two set-ups (-eds):
//
//	snapshot  one SnapshotCache for all four types: a change is a new snapshot whose EDS
//	          version moved, and SotW answers every EDS watch with every assignment it named.
//	linear    (default) the set-up go-control-plane recommends for endpoints: a MuxCache with
//	          a LinearCache for EDS (per-resource versions: SotW sends only the changed
//	          assignment) and the SnapshotCache for CDS, LDS and RDS.
//
// Control over stdin/stdout, one line each:
//
//	→ ready PORT EPOCH_MS              (once, after listening on 127.0.0.1:PORT; -port 0: any free)
//	← ping ID                          → pong ID EPOCH_MS
//	← change ID K J ADDRESS            → changed ID T_APPLY_MS T_SET_MS
//	  (endpoint J of service K gets ADDRESS: a new EDS version; CDS, LDS, RDS keep theirs)
//	EOF on stdin: exit.
//
// With -dump it prints every resource as "TYPE_URL BASE64" lines and exits.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutation "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	fault "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	headermutation "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	preservecase "github.com/envoyproxy/go-control-plane/envoy/extensions/http/header_formatters/preserve_case/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	server "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	port     = 8080
	registry = "memory://bench"
)

// Every node shares one snapshot, as Isthmus's proxies of one class share one view.
type oneGroup struct{}

func (oneGroup) ID(*core.Node) string { return "bench" }

func hostname(k int) string    { return fmt.Sprintf("svc-%d.bench.svc.cluster.local", k) }
func clusterName(k int) string { return fmt.Sprintf("outbound|%d||%s", port, hostname(k)) }

// address mirrors bench/messages.ts: 10.a.b.c from a running index.
func address(i int) string {
	return fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255)
}

func ads() *core.ConfigSource {
	return &core.ConfigSource{
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
		ResourceApiVersion:    core.ApiVersion_V3,
	}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		log.Fatal(err)
	}
	return a
}

func makeCluster(k int) *cluster.Cluster {
	name := clusterName(k)
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name},
		ConnectTimeout:       durationpb.New(10 * time.Second),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
	}
}

func str(s string) *structpb.Value { return structpb.NewStringValue(s) }

func makeAssignment(k int, addrs []string) *endpoint.ClusterLoadAssignment {
	lbs := make([]*endpoint.LbEndpoint, len(addrs))
	for j, a := range addrs {
		lbs[j] = &endpoint.LbEndpoint{
			HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address:       a,
					PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
				}}},
			}},
			HealthStatus: core.HealthStatus_HEALTHY,
			Metadata: &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
				"envoy.lb": {Fields: map[string]*structpb.Value{"app": str(fmt.Sprintf("svc-%d", k)), "version": str("v1")}},
				"isthmus":  {Fields: map[string]*structpb.Value{"registry": str(registry)}},
			}},
			LoadBalancingWeight: wrapperspb.UInt32(100),
		}
	}
	return &endpoint.ClusterLoadAssignment{
		ClusterName: clusterName(k),
		Endpoints: []*endpoint.LocalityLbEndpoints{{
			Locality:            &core.Locality{Region: "bench-region", Zone: "bench-zone-a"},
			LbEndpoints:         lbs,
			LoadBalancingWeight: wrapperspb.UInt32(uint32(100 * len(addrs))),
		}},
	}
}

func makeListener() *listener.Listener {
	manager := &hcm.HttpConnectionManager{
		CodecType:  hcm.HttpConnectionManager_AUTO,
		StatPrefix: "outbound",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			ConfigSource:    ads(),
			RouteConfigName: "outbound",
		}},
		HttpFilters: []*hcm.HttpFilter{
			{Name: "envoy.filters.http.header_mutation", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&headermutation.HeaderMutation{
				Mutations: &headermutation.Mutations{RequestMutations: []*mutation.HeaderMutation{
					{Action: &mutation.HeaderMutation_Remove{Remove: "x-forwarded-proto"}},
				}},
			})}},
			{Name: "envoy.filters.http.fault", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&fault.HTTPFault{})}},
			{Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&router.Router{SuppressEnvoyHeaders: true})}},
		},
		HttpProtocolOptions: &core.Http1ProtocolOptions{HeaderKeyFormat: &core.Http1ProtocolOptions_HeaderKeyFormat{
			HeaderFormat: &core.Http1ProtocolOptions_HeaderKeyFormat_StatefulFormatter{StatefulFormatter: &core.TypedExtensionConfig{
				Name:        "envoy.http.stateful_header_formatters.preserve_case",
				TypedConfig: mustAny(&preservecase.PreserveCaseFormatterConfig{}),
			}},
		}},
		GenerateRequestId:          wrapperspb.Bool(false),
		ServerHeaderTransformation: hcm.HttpConnectionManager_PASS_THROUGH,
	}
	return &listener.Listener{
		Name: "virtualOutbound",
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address:       "127.0.0.1",
			PortSpecifier: &core.SocketAddress_PortValue{PortValue: 15001},
		}}},
		FilterChains: []*listener.FilterChain{{
			Name: "http",
			Filters: []*listener.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(manager)},
			}},
		}},
		TrafficDirection: core.TrafficDirection_OUTBOUND,
	}
}

func makeRoutes(S int) *route.RouteConfiguration {
	hosts := make([]*route.VirtualHost, S)
	for k := range S {
		h := hostname(k)
		hosts[k] = &route.VirtualHost{
			Name:    fmt.Sprintf("%s:%d", h, port),
			Domains: []string{fmt.Sprintf("%s:%d", h, port), h},
			Routes: []*route.Route{{
				Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: clusterName(k)},
					Timeout:          durationpb.New(0),
				}},
			}},
		}
	}
	return &route.RouteConfiguration{Name: "outbound", VirtualHosts: hosts, ValidateClusters: wrapperspb.Bool(false)}
}

func epochMs() string {
	return strconv.FormatFloat(float64(time.Now().UnixNano())/1e6, 'f', 3, 64)
}

func main() {
	S := flag.Int("services", 0, "services S")
	E := flag.Int("endpoints", 0, "endpoints per service E")
	dump := flag.Bool("dump", false, "print every resource as TYPE_URL BASE64 and exit")
	eds := flag.String("eds", "linear", "EDS cache: linear or snapshot")
	listenPort := flag.Int("port", 0, "xDS port on 127.0.0.1 (0: any free one)")
	apply := flag.String("apply", "", "endpoint changes made before start, K:J:ADDRESS,… (a restart keeps them)")
	flag.Parse()
	if *S <= 0 || *E <= 0 {
		log.Fatal("-services and -endpoints must be positive")
	}
	if *eds != "linear" && *eds != "snapshot" {
		log.Fatal("-eds: linear or snapshot")
	}
	log.SetFlags(log.Lmicroseconds)

	addrs := make([][]string, *S)
	clusters := make([]types.Resource, *S)
	assignments := make([]types.Resource, *S)
	for k := range *S {
		addrs[k] = make([]string, *E)
		for j := range *E {
			addrs[k][j] = address(k**E + j + 1)
		}
	}
	for _, c := range strings.FieldsFunc(*apply, func(r rune) bool { return r == ',' }) {
		f := strings.Split(c, ":")
		k, _ := strconv.Atoi(f[0])
		j, _ := strconv.Atoi(f[1])
		addrs[k][j%*E] = f[2]
	}
	for k := range *S {
		clusters[k] = makeCluster(k)
		assignments[k] = makeAssignment(k, addrs[k])
	}
	snap, err := cache.NewSnapshot("1", map[resource.Type][]types.Resource{
		resource.ClusterType:  clusters,
		resource.EndpointType: assignments,
		resource.ListenerType: {makeListener()},
		resource.RouteType:    {makeRoutes(*S)},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		log.Fatal(err)
	}
	if *dump {
		w := bufio.NewWriter(os.Stdout)
		for _, t := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
			for _, r := range snap.Resources[cache.GetResponseType(t)].Items {
				b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Resource)
				if err != nil {
					log.Fatal(err)
				}
				fmt.Fprintf(w, "%s %s\n", t, base64.StdEncoding.EncodeToString(b))
			}
		}
		w.Flush()
		return
	}

	ctx := context.Background()
	snapshots := cache.NewSnapshotCache(true, oneGroup{}, nil)
	if err := snapshots.SetSnapshot(ctx, "bench", snap); err != nil {
		log.Fatal(err)
	}
	var served cache.Cache = snapshots
	var endpoints *cache.LinearCache
	if *eds == "linear" {
		initial := make(map[string]types.Resource, *S)
		for k, a := range assignments {
			initial[clusterName(k)] = a
		}
		endpoints = cache.NewLinearCache(resource.EndpointType, cache.WithInitialResources(initial), cache.WithVersionPrefix(strconv.FormatInt(time.Now().UnixNano(), 36)+"-"))
		byType := func(typeURL string) string {
			if typeURL == resource.EndpointType {
				return "eds"
			}
			return "snapshot"
		}
		served = &cache.MuxCache{
			Classify:      func(r *cache.Request) string { return byType(r.GetTypeUrl()) },
			ClassifyDelta: func(r *cache.DeltaRequest) string { return byType(r.GetTypeUrl()) },
			Caches:        map[string]cache.Cache{"eds": endpoints, "snapshot": snapshots},
		}
	}
	xds := server.NewServer(ctx, served, nil)
	g := grpc.NewServer(
		grpc.MaxConcurrentStreams(1000000),
		grpc.MaxRecvMsgSize(1<<30),
		grpc.MaxSendMsgSize(1<<30),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
	)
	discovery.RegisterAggregatedDiscoveryServiceServer(g, xds)
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *listenPort))
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := g.Serve(lis); err != nil {
			log.Fatal(err)
		}
	}()
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, a ...any) {
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	say("ready %d %s", lis.Addr().(*net.TCPAddr).Port, epochMs())

	version := 1
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "ping":
			say("pong %s %s", f[1], epochMs())
		case "change":
			tApply := epochMs()
			k, _ := strconv.Atoi(f[2])
			j, _ := strconv.Atoi(f[3])
			next := make([]string, *E)
			copy(next, addrs[k])
			next[j%*E] = f[4]
			addrs[k] = next
			cla := makeAssignment(k, next)
			if endpoints != nil {
				if err := endpoints.UpdateResource(clusterName(k), cla); err != nil {
					log.Fatal(err)
				}
				say("changed %s %s %s", f[1], tApply, epochMs())
				continue
			}
			items := make([]types.Resource, *S)
			copy(items, assignments)
			items[k] = cla
			assignments = items
			version++
			// A new snapshot: CDS, LDS and RDS keep their versions, only EDS moves.
			n := &cache.Snapshot{Resources: snap.Resources}
			n.Resources[types.Endpoint] = cache.NewResources(strconv.Itoa(version), items)
			if err := n.Consistent(); err != nil {
				log.Fatal(err)
			}
			if err := snapshots.SetSnapshot(ctx, "bench", n); err != nil {
				log.Fatal(err)
			}
			snap = n
			say("changed %s %s %s", f[1], tApply, epochMs())
		default:
			log.Printf("unknown command %q", f[0])
		}
	}
	g.Stop()
}
