package kubernetes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/nerstream/nerstream/config"
)

// The kustomizations a user applies: each is one flavour of member over
// common/.
var roots = []string{"cpu", "gpu"}

// shutdownGrace is what a stop may take beyond shutdown_timeout (the last
// commits, leaving the group, closing the writer): stream.shutdownGrace.
const shutdownGrace = 5 * time.Second

// kustomization is the part of kustomize's Kustomization these files use;
// it decodes strictly like the manifests.
type kustomization struct {
	APIVersion         string   `json:"apiVersion"`
	Kind               string   `json:"kind"`
	Namespace          string   `json:"namespace"`
	Resources          []string `json:"resources"`
	ConfigMapGenerator []struct {
		Name    string   `json:"name"`
		Files   []string `json:"files"`
		Options *struct {
			Labels map[string]string `json:"labels"`
		} `json:"options"`
	} `json:"configMapGenerator"`
}

// KEDA's types are not taken from github.com/kedacore/keda/v2: that module
// is the whole operator (its scalers bring every cloud SDK). These structs
// are the fields the manifests use, decoded as strictly; the kafka
// trigger's metadata keys are checked against the scaler's documented list.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

type triggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// kafkaScalerKeys are the metadata keys of KEDA's kafka scaler
// (keda.sh/docs/latest/scalers/apache-kafka).
var kafkaScalerKeys = []string{"bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
	"offsetResetPolicy", "allowIdleConsumers", "excludePersistentLag", "scaleToZeroOnInvalidOffset",
	"limitToPartitionsWithLag", "partitionLimitation", "ensureEvenDistributionOfPartitions", "version", "sasl", "tls", "unsafeSsl"}

// newObject is the Go type of apiVersion and kind.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}, nil
	case "keda.sh/v1alpha1 ScaledObject":
		return &scaledObject{}, nil
	case "keda.sh/v1alpha1 TriggerAuthentication":
		return &triggerAuthentication{}, nil
	}
	return nil, fmt.Errorf("no Go type for apiVersion %q kind %q (a Secret is never made here)", apiVersion, kind)
}

// decodeStrict decodes data (JSON, or YAML turned into JSON) into v as
// the API server does (sigs.k8s.io/json: field names match case and all),
// refusing unknown fields and duplicate keys. encoding/json would not do:
// it matches field names without regard to case, so
// "readOnlyRootFileSystem" would pass.
func decodeStrict(data []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeManifests decodes each document of the YAML file at path into the
// type its apiVersion and kind name.
func decodeManifests(path string) ([]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var objs []any
	for i, doc := range docSep.Split(string(b), -1) {
		j, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		if string(j) == "null" {
			continue // comments only
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(j, &tm); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err == nil {
			err = decodeStrict(j, obj)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d (%s): %w", path, i+1, tm.Kind, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// tree is what one kustomization builds: its objects and generated files.
type tree struct {
	objects []any
	files   map[string]string // configMapGenerator key → path
	used    map[string]bool   // every file the kustomizations name
}

// loadTree reads the kustomization in dir and, recursively, those it
// names: every resource and generator file must exist and decode.
func loadTree(dir string, t *tree) error {
	kpath := filepath.Join(dir, "kustomization.yaml")
	b, err := os.ReadFile(kpath)
	if err != nil {
		return err
	}
	t.used[kpath] = true
	var k kustomization
	if err := decodeStrict(b, &k); err != nil {
		return fmt.Errorf("%s: %w", kpath, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return fmt.Errorf("%s: apiVersion %q kind %q, want kustomize.config.k8s.io/v1beta1 Kustomization", kpath, k.APIVersion, k.Kind)
	}
	var errs []error
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: resource %s: %w", kpath, r, err))
		case st.IsDir():
			errs = append(errs, loadTree(p, t))
		default:
			t.used[p] = true
			objs, err := decodeManifests(p)
			errs = append(errs, err)
			t.objects = append(t.objects, objs...)
		}
	}
	for _, g := range k.ConfigMapGenerator {
		for _, f := range g.Files {
			key, file, ok := strings.Cut(f, "=")
			if !ok {
				key, file = filepath.Base(f), f
			}
			p := filepath.Join(dir, file)
			if _, err := os.Stat(p); err != nil {
				errs = append(errs, fmt.Errorf("%s: configMapGenerator %s: %w", kpath, g.Name, err))
				continue
			}
			t.used[p] = true
			t.files[key] = p
		}
	}
	return errors.Join(errs...)
}

// checkDir checks the kustomizations under dir (a copy of this folder, or
// this folder itself): each root loads and decodes strictly, its objects
// keep the promises of README's Operations section, and every manifest
// under dir is used by some kustomization.
func checkDir(dir string) error {
	var errs []error
	used := map[string]bool{}
	for _, root := range roots {
		t := &tree{files: map[string]string{}, used: used}
		if err := loadTree(filepath.Join(dir, root), t); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", root, err))
			continue
		}
		if err := checkObjects(t); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", root, err))
		}
	}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".json")) && !used[p] {
			errs = append(errs, fmt.Errorf("%s: no kustomization names it", p))
		}
		return err
	})
	return errors.Join(append(errs, err)...)
}

// checkObjects checks what the objects of one kustomization promise.
func checkObjects(t *tree) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var deployments []*appsv1.Deployment
	var services []*corev1.Service
	var monitors []*monitoringv1.ServiceMonitor
	var pdbs []*policyv1.PodDisruptionBudget
	var scaled []*scaledObject
	auths := map[string]bool{}
	for _, o := range t.objects {
		switch o := o.(type) {
		case *appsv1.Deployment:
			deployments = append(deployments, o)
		case *corev1.Service:
			services = append(services, o)
		case *monitoringv1.ServiceMonitor:
			monitors = append(monitors, o)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *scaledObject:
			scaled = append(scaled, o)
		case *triggerAuthentication:
			auths[o.Name] = true
		}
	}
	if len(deployments) != 1 || len(services) != 1 || len(monitors) != 1 || len(pdbs) != 1 || len(scaled) != 1 {
		return fmt.Errorf("want one Deployment, Service, ServiceMonitor, PodDisruptionBudget and ScaledObject; have %d, %d, %d, %d, %d",
			len(deployments), len(services), len(monitors), len(pdbs), len(scaled))
	}
	dep, svc, mon, pdb, so := deployments[0], services[0], monitors[0], pdbs[0], scaled[0]
	pod := dep.Spec.Template.Spec
	podLabels := labels.Set(dep.Spec.Template.Labels)

	cfgPath, ok := t.files["nerstream.yaml"]
	if !ok {
		return errors.New("no ConfigMap file nerstream.yaml")
	}
	if len(pod.Containers) != 1 {
		return fmt.Errorf("%s: %d containers, want 1", dep.Name, len(pod.Containers))
	}
	c := pod.Containers[0]

	// The configuration the member will run: the ConfigMap's file, the
	// container's variables over it (a Secret's value stands in as "x").
	var env []string
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			if e.ValueFrom.SecretKeyRef.Name != "nerstream-secrets" {
				fail("%s: env %s comes from Secret %q, want nerstream-secrets", dep.Name, e.Name, e.ValueFrom.SecretKeyRef.Name)
			}
			env = append(env, e.Name+"=x")
		case regexp.MustCompile(`(?i)password|token|secret|key`).MatchString(e.Name):
			fail("%s: env %s is written inline; take it from the Secret", dep.Name, e.Name)
		default:
			env = append(env, e.Name+"="+e.Value)
		}
	}
	cfg, err := config.LoadFrom(cfgPath, config.Sources{Env: env})
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return fmt.Errorf("%s: the configuration with %s's environment: %w", cfgPath, dep.Name, err)
	}

	if !slices.Contains(c.Args, "run") {
		fail("%s: args %q do not run a member", dep.Name, c.Args)
	}
	// Ports and probes.
	_, port, _ := net.SplitHostPort(cfg.HTTP.Address)
	var http *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == "http" {
			http = &c.Ports[i]
		}
	}
	if http == nil || fmt.Sprint(http.ContainerPort) != port {
		fail("%s: no container port named http on http.address's port %s", dep.Name, port)
	}
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
			fail("%s: %s probe is not GET %s on port http", dep.Name, what, path)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	// Shutdown: the grace period outlasts a drain.
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= cfg.ShutdownTimeout+shutdownGrace {
		fail("%s: terminationGracePeriodSeconds %v is not above shutdown_timeout %s + %s", dep.Name, g, cfg.ShutdownTimeout, shutdownGrace)
	}
	// Security.
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		fail("%s: the pod does not run as a non-root user", dep.Name)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		fail("%s: the container's root file system is writable, or it may escalate privileges", dep.Name)
	}
	// Volumes: the configuration, the secrets, and the model cache on a
	// claim at NERSTREAM_HOME.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.Volume{}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			fail("%s: mount %s has no volume", dep.Name, m.Name)
		}
		mounts[m.MountPath] = v
	}
	home := ""
	for _, e := range c.Env {
		if e.Name == "NERSTREAM_HOME" {
			home = e.Value
		}
	}
	if v, ok := mounts[home]; home == "" || !ok || v.PersistentVolumeClaim == nil {
		fail("%s: NERSTREAM_HOME %q is not a persistent volume claim: a new pod would pull the model again", dep.Name, home)
	}
	if v, ok := mounts[filepath.Dir(c.Args[len(c.Args)-1])]; !ok || v.ConfigMap == nil || v.ConfigMap.Name != "nerstream-config" {
		fail("%s: the configuration file is not mounted from the ConfigMap nerstream-config", dep.Name)
	}
	for _, f := range []string{cfg.Kafka.SASL.PasswordFile, cfg.Kafka.TLS.CAFile} {
		if v, ok := mounts[filepath.Dir(f)]; f != "" && (!ok || v.Secret == nil || v.Secret.SecretName != "nerstream-secrets") {
			fail("%s: %s is not mounted from the Secret nerstream-secrets", dep.Name, f)
		}
	}
	// A GPU member: the CUDA image, GPUs from the device plugin.
	if strings.Contains(dep.Name, "gpu") {
		gpus := c.Resources.Limits[corev1.ResourceName("nvidia.com/gpu")]
		if gpus.Value() < 1 || !strings.HasSuffix(c.Image, ":cuda") {
			fail("%s: a GPU member wants the :cuda image and nvidia.com/gpu limits; has %s and %s", dep.Name, c.Image, gpus.String())
		}
	}
	// Selectors.
	if sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector); err != nil || !sel.Matches(podLabels) {
		fail("%s: its selector does not match its pods", dep.Name)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		fail("Service %s does not select %s's pods", svc.Name, dep.Name)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].TargetPort.String() != "http" {
		fail("Service %s: want one port named http to the container port http", svc.Name)
	}
	if sel, err := metav1.LabelSelectorAsSelector(&mon.Spec.Selector); err != nil || !sel.Matches(labels.Set(svc.Labels)) {
		fail("ServiceMonitor %s does not select Service %s", mon.Name, svc.Name)
	}
	if len(mon.Spec.Endpoints) != 1 || mon.Spec.Endpoints[0].Port != "http" || mon.Spec.Endpoints[0].Path != "/metrics" {
		fail("ServiceMonitor %s: want /metrics on port http", mon.Name)
	}
	if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !sel.Matches(podLabels) {
		fail("PodDisruptionBudget %s does not select %s's pods", pdb.Name, dep.Name)
	}
	// Autoscaling on the group's lag, up to the partition count.
	s := so.Spec
	if s.ScaleTargetRef.Name != dep.Name {
		fail("ScaledObject %s scales %q, not %s", so.Name, s.ScaleTargetRef.Name, dep.Name)
	}
	if s.MaxReplicaCount == nil || s.MinReplicaCount == nil || *s.MinReplicaCount < 1 || *s.MaxReplicaCount < *s.MinReplicaCount {
		fail("ScaledObject %s: want 1 ≤ minReplicaCount ≤ maxReplicaCount", so.Name)
	}
	if len(s.Triggers) != 1 || s.Triggers[0].Type != "kafka" {
		fail("ScaledObject %s: want one kafka trigger", so.Name)
	} else {
		tr := s.Triggers[0]
		for _, k := range slices.Sorted(maps.Keys(tr.Metadata)) {
			if !slices.Contains(kafkaScalerKeys, k) {
				fail("ScaledObject %s: unknown kafka trigger metadata %q", so.Name, k)
			}
		}
		m := tr.Metadata
		if m["consumerGroup"] != cfg.Kafka.GroupID || !slices.Contains(cfg.Input.Topics, m["topic"]) ||
			m["bootstrapServers"] != strings.Join(cfg.Kafka.Brokers, ",") || m["allowIdleConsumers"] != "false" {
			fail("ScaledObject %s: its trigger (%v) is not the members' group, topic and brokers with allowIdleConsumers false", so.Name, m)
		}
		if tr.AuthenticationRef == nil || !auths[tr.AuthenticationRef.Name] {
			fail("ScaledObject %s: its authenticationRef names no TriggerAuthentication here", so.Name)
		}
	}
	return errors.Join(errs...)
}

// TestManifests checks the real files.
func TestManifests(t *testing.T) {
	if err := checkDir("."); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies this folder's manifests into a new temporary folder.
func copyDir(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".json")) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, p), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// edit replaces the first old in dir's file with new, failing the test
// when old is not there.
func edit(t *testing.T, dir, file, old, new string) {
	t.Helper()
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s has no %q", file, old)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestManifestsRefuse feeds broken copies of the manifests: each must fail
// the check, with an error that names what is wrong.
func TestManifestsRefuse(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"misspelt Deployment field", "cpu/deployment.yaml", "readOnlyRootFilesystem", "readOnlyRootFileSystem", `unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"`},
		{"misspelt probe field", "gpu/deployment.yaml", "periodSeconds: 10", "periodSecond: 10", `unknown field "spec.template.spec.containers[0].readinessProbe.periodSecond"`},
		{"misspelt ServiceMonitor field", "common/servicemonitor.yaml", "interval:", "intervall:", `unknown field "spec.endpoints[0].intervall"`},
		{"misspelt PrometheusRule field", "common/prometheusrule.yaml", "annotations:", "anotations:", `unknown field "spec.groups[0].rules[0].anotations"`},
		{"misspelt ScaledObject field", "cpu/scaledobject.yaml", "maxReplicaCount: 12", "maxReplicasCount: 12", `unknown field "spec.maxReplicasCount"`},
		{"misspelt KEDA trigger metadata", "gpu/scaledobject.yaml", "lagThreshold: ", "lagTreshold: ", `"lagTreshold"`},
		{"misspelt kustomization field", "common/kustomization.yaml", "configMapGenerator", "configmapGenerator", `unknown field "configmapGenerator"`},
		{"a duplicate key", "common/service.yaml", "  selector:", "  type: ClusterIP\n  type: NodePort\n  selector:", `"type" already set`},
		{"a missing resource file", "cpu/kustomization.yaml", "pdb.yaml", "pdbs.yaml", "pdbs.yaml"},
		{"a missing generator file", "common/kustomization.yaml", "- dashboard.json", "- dashboards.json", "dashboards.json"},
		{"an unknown kind", "common/namespace.yaml", "kind: Namespace", "kind: Secret", `kind "Secret"`},
		{"an inline secret", "cpu/deployment.yaml", "- name: NERSTREAM_MODEL_THREADS\n              value: \"4\"", "- name: HF_TOKEN\n              value: hf_abc", "HF_TOKEN is written inline"},
		{"a grace period below shutdown_timeout", "gpu/deployment.yaml", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 20", "terminationGracePeriodSeconds"},
		{"root", "cpu/deployment.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "non-root"},
		{"readiness on /healthz", "cpu/deployment.yaml", "path: /readyz", "path: /healthz", "readiness probe"},
		{"no GPU", "gpu/deployment.yaml", "memory: 10Gi\n              nvidia.com/gpu: \"1\"", "memory: 10Gi", "nvidia.com/gpu"},
		{"the model cache in the container", "cpu/deployment.yaml", "mountPath: /var/lib/nerstream", "mountPath: /var/lib/other", "pull the model again"},
		{"idle consumers", "cpu/scaledobject.yaml", `allowIdleConsumers: "false"`, `allowIdleConsumers: "true"`, "allowIdleConsumers"},
		{"another group", "gpu/scaledobject.yaml", "consumerGroup: nerstream", "consumerGroup: other", "group"},
		{"a bad configuration", "common/nerstream.yaml", "shutdown_timeout: 20s", "shutdown_timeout: 40s", "shutdown_timeout"},
		{"an orphan manifest", "cpu/kustomization.yaml", "  - pdb.yaml\n", "", "no kustomization names it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t)
			edit(t, dir, tc.file, tc.old, tc.new)
			err := checkDir(dir)
			if err == nil {
				t.Fatalf("checkDir passed a copy with %s", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("the error does not say %q:\n%v", tc.want, err)
			}
		})
	}
}
