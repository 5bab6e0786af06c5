// istio-translate runs Istio's own translation offline: istio-agent's bootstrap generation for one
// pod's sidecar, and istiod's xDS generation (pilot's FakeDiscoveryServer, the harness Istio's own
// tests use, with a fake Kubernetes client) for that sidecar. It prints what istio-agent would write
// as the bootstrap and what istiod would push to the sidecar (listeners, clusters, routes, endpoints)
// as one JSON document. Istio is the version pinned in go.mod (istio.io/istio).
//
//	istio-translate --objects objects.yaml --pod sagamesh-demo/trips-0 \
//	    --bootstrap-template envoy_bootstrap.json [--mesh mesh.yaml]
//
// objects.yaml holds the Kubernetes objects (Services, Pods, EndpointSlices, Namespaces, …) and the
// Istio configs (EnvoyFilter, VirtualService, AuthorizationPolicy, …) in one multi-document YAML;
// --pod names the Pod whose sidecar is translated. Istio reads its feature flags from the
// environment (e.g. PILOT_ENABLE_METADATA_EXCHANGE=false, an istiod setting), as istiod does.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	meshconfig "istio.io/api/mesh/v1alpha1"
	agentconfig "istio.io/istio/pilot/cmd/pilot-agent/config"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/util"
	labelutil "istio.io/istio/pilot/pkg/serviceregistry/util/label"
	xds "istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/bootstrap"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/mesh"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/test"
)

type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		ServiceAccountName string `json:"serviceAccountName"`
		Containers         []struct {
			Name string `json:"name"`
		} `json:"containers"`
	} `json:"spec"`
	Status struct {
		PodIP string `json:"podIP"`
	} `json:"status"`
}

// istioGroups are the API groups whose objects are Istio configs (the config store), not
// Kubernetes objects (the service registry).
var istioGroups = []string{"networking.istio.io/", "security.istio.io/", "telemetry.istio.io/", "extensions.istio.io/"}

func isIstioConfig(o object) bool {
	for _, g := range istioGroups {
		if strings.HasPrefix(o.APIVersion, g) {
			return true
		}
	}
	return false
}

func main() {
	objectsFile := flag.String("objects", "", "multi-document YAML: Kubernetes objects and Istio configs")
	podRef := flag.String("pod", "", "namespace/name of the Pod whose sidecar is translated")
	templateFile := flag.String("bootstrap-template", "", "istio-agent's bootstrap template (tools/packaging/common/envoy_bootstrap.json of the pinned Istio)")
	meshFile := flag.String("mesh", "", "mesh config YAML (as in the istio ConfigMap's `mesh` key); Istio's defaults when empty")
	outFile := flag.String("out", "", "where to write the JSON (default: stdout)")
	flag.Parse()
	if *objectsFile == "" || *podRef == "" || *templateFile == "" {
		flag.Usage()
		os.Exit(2)
	}
	// Istio's own logs (istio-agent's, istiod's) go to stderr: stdout is the JSON.
	logOptions := istiolog.DefaultOptions()
	logOptions.OutputPaths = []string{"stderr"}
	logOptions.ErrorOutputPaths = []string{"stderr"}
	if err := istiolog.Configure(logOptions); err != nil {
		fmt.Fprintf(os.Stderr, "istio-translate: %v\n", err)
		os.Exit(1)
	}
	if err := run(*objectsFile, *podRef, *templateFile, *meshFile, *outFile); err != nil {
		fmt.Fprintf(os.Stderr, "istio-translate: %v\n", err)
		os.Exit(1)
	}
}

func run(objectsFile, podRef, templateFile, meshFile, outFile string) error {
	raw, err := os.ReadFile(objectsFile)
	if err != nil {
		return err
	}
	template, err := filepath.Abs(templateFile)
	if err != nil {
		return err
	}
	meshYAML := ""
	if meshFile != "" {
		b, err := os.ReadFile(meshFile)
		if err != nil {
			return err
		}
		meshYAML = string(b)
	}
	meshConfig := mesh.DefaultMeshConfig()
	if meshYAML != "" {
		if meshConfig, err = mesh.ApplyMeshConfig(meshYAML, meshConfig); err != nil {
			return fmt.Errorf("mesh config: %w", err)
		}
	}

	var kubeDocs, istioDocs []string
	var pod *object
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return fmt.Errorf("objects: %w", err)
		}
		if o.Kind == "" {
			continue
		}
		if isIstioConfig(o) {
			istioDocs = append(istioDocs, doc)
		} else {
			kubeDocs = append(kubeDocs, doc)
		}
		if o.Kind == "Pod" && o.Metadata.Namespace+"/"+o.Metadata.Name == podRef {
			p := o
			pod = &p
		}
	}
	if pod == nil {
		return fmt.Errorf("no Pod %s in %s", podRef, objectsFile)
	}
	if pod.Status.PodIP == "" {
		return fmt.Errorf("Pod %s has no status.podIP", podRef)
	}

	// 1. istio-agent: the ProxyConfig (mesh defaultConfig + the pod's proxy.istio.io/config
	// annotation, read from the downward API files as in the pod), the node and the bootstrap.
	bootstrapJSON, node, err := agentBootstrap(pod, template, meshYAML)
	if err != nil {
		return err
	}

	// 2. istiod: the xDS it generates for that node.
	var out map[string]any
	err = test.Wrap(func(t test.Failer) {
		out, err = pilotXDS(t, meshConfig, strings.Join(kubeDocs, "\n---\n"), strings.Join(istioDocs, "\n---\n"), node)
		if err != nil {
			t.Fatal(err)
		}
	})
	if err != nil {
		return err
	}
	var bs any
	if err := json.Unmarshal(bootstrapJSON, &bs); err != nil {
		return fmt.Errorf("bootstrap is not JSON: %w", err)
	}
	out["bootstrap"] = bs
	w := os.Stdout
	if outFile != "" {
		f, err := os.Create(outFile)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// downwardAPI writes a map the way the kubelet's downward API volume does (key="value" lines,
// values quoted as Go strings), which is what istio-agent reads for the pod's labels and annotations.
func downwardAPI(m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return b.Bytes()
}

func agentBootstrap(pod *object, template, meshYAML string) ([]byte, *core.Node, error) {
	// istio-agent reads ./etc/istio/pod/{labels,annotations} relative to its working directory.
	dir, err := os.MkdirTemp("", "istio-translate-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	podInfo := filepath.Join(dir, filepath.Dir(constants.PodInfoAnnotationsPath))
	if err := os.MkdirAll(podInfo, 0o755); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(podInfo, "labels"), downwardAPI(pod.Metadata.Labels), 0o644); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(podInfo, "annotations"), downwardAPI(pod.Metadata.Annotations), 0o644); err != nil {
		return nil, nil, err
	}
	meshPath := ""
	if meshYAML != "" {
		meshPath = filepath.Join(dir, "mesh.yaml")
		if err := os.WriteFile(meshPath, []byte(meshYAML), 0o644); err != nil {
			return nil, nil, err
		}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, nil, err
	}
	if err := os.Chdir(dir); err != nil {
		return nil, nil, err
	}
	defer func() { _ = os.Chdir(cwd) }()

	ns, name := pod.Metadata.Namespace, pod.Metadata.Name
	workload := pod.Metadata.Labels["app"]
	serviceCluster := workload + "." + ns
	proxyConfig, err := agentconfig.ConstructProxyConfig(meshPath, serviceCluster, "", 0)
	if err != nil {
		return nil, nil, fmt.Errorf("istio-agent ProxyConfig: %w", err)
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	containers := make([]string, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		if c.Name != "istio-proxy" {
			containers = append(containers, c.Name)
		}
	}
	// The environment Istio's sidecar injector gives the istio-proxy container (the subset that
	// feeds the node metadata).
	envs := []string{
		"POD_NAME=" + name,
		"POD_NAMESPACE=" + ns,
		"INSTANCE_IP=" + pod.Status.PodIP,
		"SERVICE_ACCOUNT=" + sa,
		"ISTIO_META_POD_PORTS=[]",
		"ISTIO_META_APP_CONTAINERS=" + strings.Join(containers, ","),
		"ISTIO_META_CLUSTER_ID=Kubernetes",
		"ISTIO_META_NODE_NAME=node-0",
		"ISTIO_META_INTERCEPTION_MODE=REDIRECT",
		"ISTIO_META_WORKLOAD_NAME=" + workload,
		"ISTIO_META_OWNER=kubernetes://apis/apps/v1/namespaces/" + ns + "/deployments/" + workload,
		"ISTIO_META_MESH_ID=cluster.local",
		"TRUST_DOMAIN=cluster.local",
	}
	nodeMeta, err := bootstrap.GetNodeMetaData(bootstrap.MetadataOptions{
		Envs:                envs,
		InstanceIPs:         []string{pod.Status.PodIP},
		ID:                  strings.Join([]string{string(model.SidecarProxy), pod.Status.PodIP, name + "." + ns, ns + ".svc.cluster.local"}, "~"),
		ProxyConfig:         proxyConfig,
		PilotSubjectAltName: []string{"spiffe://cluster.local/ns/istio-system/sa/istiod"},
		OutlierLogPath:      "",
		EnvoyStatusPort:     15021,
		EnvoyPrometheusPort: 15090,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("istio-agent node metadata: %w", err)
	}
	var buf bytes.Buffer
	if err := bootstrap.New(bootstrap.Config{Node: nodeMeta}).WriteTo(template, &buf); err != nil {
		return nil, nil, fmt.Errorf("istio-agent bootstrap: %w", err)
	}
	// The node the sidecar's Envoy presents to istiod is the bootstrap's.
	var parsed struct {
		Node json.RawMessage `json:"node"`
	}
	if err := json.Unmarshal(buf.Bytes(), &parsed); err != nil {
		return nil, nil, fmt.Errorf("bootstrap: %w", err)
	}
	node := &core.Node{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(parsed.Node, node); err != nil {
		return nil, nil, fmt.Errorf("bootstrap node: %w", err)
	}
	return buf.Bytes(), node, nil
}

func pilotXDS(t test.Failer, meshConfig *meshconfig.MeshConfig, kubeObjects, istioConfigs string, node *core.Node) (map[string]any, error) {
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		KubernetesObjectString: kubeObjects,
		ConfigString:           istioConfigs,
		MeshConfig:             meshConfig,
	})
	// As istiod does for a connecting proxy (initProxyMetadata): the node's metadata and ID.
	meta, err := model.ParseMetadata(node.Metadata)
	if err != nil {
		return nil, fmt.Errorf("node metadata: %w", err)
	}
	proxy, err := model.ParseServiceNodeWithMetadata(node.Id, meta)
	if err != nil {
		return nil, fmt.Errorf("node id: %w", err)
	}
	proxy.ConfigNamespace = model.GetProxyConfigNamespace(proxy)
	proxy.XdsNode = node
	// istiod's computeProxyState for a new connection: the workload's labels from the registry
	// (what an EnvoyFilter's workloadSelector matches), then the topology labels; SetupProxy does
	// the rest (sidecar scope, service targets, gateways, IP mode).
	proxy.SetWorkloadLabels(s.Env())
	proxy.Labels = labelutil.AugmentLabels(proxy.Labels, proxy.Metadata.ClusterID,
		util.LocalityToString(node.Locality), proxy.GetNodeName(), proxy.Metadata.Network)
	proxy = s.SetupProxy(proxy)

	listeners := s.Listeners(proxy)
	clusters := s.Clusters(proxy)
	routes := s.RoutesFromListeners(proxy, listeners)
	endpoints := s.Endpoints(proxy)

	out := map[string]any{}
	add := func(key string, msgs []proto.Message) error {
		list := make([]json.RawMessage, 0, len(msgs))
		for _, m := range msgs {
			b, err := protojson.Marshal(m)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			list = append(list, b)
		}
		out[key] = list
		return nil
	}
	if err := add("listeners", toMessages(listeners)); err != nil {
		return nil, err
	}
	if err := add("clusters", toMessages(clusters)); err != nil {
		return nil, err
	}
	if err := add("routes", toMessages(routes)); err != nil {
		return nil, err
	}
	if err := add("endpoints", toMessages(endpoints)); err != nil {
		return nil, err
	}
	out["proxy"] = map[string]any{
		"id":              proxy.ID,
		"ipAddresses":     proxy.IPAddresses,
		"configNamespace": proxy.ConfigNamespace,
		"labels":          proxy.Labels,
		"istioVersion":    meta.IstioVersion,
		"proxyConfig":     meta.ProxyConfig,
	}
	return out, nil
}

func toMessages[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}
