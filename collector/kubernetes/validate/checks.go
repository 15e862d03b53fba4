package main

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const (
	// memory_limiter's limit (collector/config.yaml, agent.yaml) must leave the Go runtime headroom below the
	// container's limit, or the kernel kills the pod before the limiter refuses data.
	memoryLimitEnv      = "OTEL_LLM_COLLECTOR_MEMORY_LIMIT_MIB"
	maxMemoryLimitShare = 0.8
	// The agents' DNS resolver name (collector/agent-dns.yaml): must be a headless Service of the gateways.
	gatewaysDNSEnv = "OTEL_LLM_COLLECTOR_GATEWAYS_DNS"
	clusterDomain  = "svc.cluster.local"
	configFlag     = "--config="
)

type workload struct {
	where, kind, name, namespace string
	selector                     *metav1.LabelSelector
	template                     corev1.PodTemplateSpec
	replicas                     int32
}

type manifests struct {
	namespaces map[string]bool
	configMaps map[string]*corev1.ConfigMap // namespace/name
	services   []*corev1.Service
	workloads  []workload
	budgets    []*policyv1.PodDisruptionBudget
	problems   []string
}

func (m *manifests) fail(format string, args ...any) {
	m.problems = append(m.problems, fmt.Sprintf(format, args...))
}

// check returns every broken invariant of the decoded objects, each naming the object and the rule.
func check(objects []object) []string {
	m := &manifests{namespaces: map[string]bool{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, obj := range objects {
		m.add(obj)
	}
	for _, w := range m.workloads {
		m.checkWorkload(w)
	}
	for _, svc := range m.services {
		m.checkService(svc)
	}
	for _, pdb := range m.budgets {
		m.checkBudget(pdb)
	}
	return m.problems
}

func (m *manifests) add(obj object) {
	var meta metav1.ObjectMeta
	switch v := obj.value.(type) {
	case *corev1.Namespace:
		m.namespaces[v.Name] = true
		meta = v.ObjectMeta
	case *corev1.ConfigMap:
		m.configMaps[v.Namespace+"/"+v.Name] = v
		meta = v.ObjectMeta
	case *corev1.Service:
		m.services = append(m.services, v)
		meta = v.ObjectMeta
	case *appsv1.DaemonSet:
		m.workloads = append(m.workloads, workload{obj.where, obj.kind, v.Name, v.Namespace, v.Spec.Selector,
			v.Spec.Template, 0})
		meta = v.ObjectMeta
	case *appsv1.Deployment:
		replicas := int32(1)
		if v.Spec.Replicas != nil {
			replicas = *v.Spec.Replicas
		}
		m.workloads = append(m.workloads, workload{obj.where, obj.kind, v.Name, v.Namespace, v.Spec.Selector,
			v.Spec.Template, replicas})
		meta = v.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		m.budgets = append(m.budgets, v)
		meta = v.ObjectMeta
	}
	if meta.Name == "" {
		m.fail("%s: %s without metadata.name", obj.where, obj.kind)
	}
	if obj.kind != "Namespace" && meta.Namespace == "" {
		m.fail("%s: %s %s without metadata.namespace", obj.where, obj.kind, meta.Name)
	}
}

// selecting returns the workloads in namespace whose pod template labels the selector matches.
func (m *manifests) selecting(namespace string, selector labels.Selector) []workload {
	var found []workload
	for _, w := range m.workloads {
		if w.namespace == namespace && !selector.Empty() && selector.Matches(labels.Set(w.template.Labels)) {
			found = append(found, w)
		}
	}
	return found
}

func (m *manifests) checkWorkload(w workload) {
	id := fmt.Sprintf("%s %s %s", w.where, w.kind, w.name)
	if w.namespace != "" && len(m.namespaces) > 0 && !m.namespaces[w.namespace] {
		m.fail("%s: namespace %q is not among the manifests' Namespaces", id, w.namespace)
	}
	selector, err := metav1.LabelSelectorAsSelector(w.selector)
	if err != nil || selector.Empty() || !selector.Matches(labels.Set(w.template.Labels)) {
		m.fail("%s: spec.selector does not select the pod template's labels %v", id, w.template.Labels)
	}
	for _, c := range w.template.Spec.Containers {
		m.checkContainer(id, w, c)
	}
}

func (m *manifests) checkContainer(id string, w workload, c corev1.Container) {
	id = fmt.Sprintf("%s container %s", id, c.Name)
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[name]; !ok {
			m.fail("%s: no resources.requests.%s", id, name)
		}
		if _, ok := c.Resources.Limits[name]; !ok {
			m.fail("%s: no resources.limits.%s", id, name)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	m.checkMemoryLimiter(id, env, c.Resources.Limits)
	if name, ok := env[gatewaysDNSEnv]; ok {
		m.checkGatewaysDNS(id, w.namespace, name)
	}
	configs := m.checkConfigFiles(id, w, c)
	for _, probe := range []struct {
		what  string
		probe *corev1.Probe
	}{{"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}} {
		m.checkProbe(id, probe.what, probe.probe, c, configs)
	}
}

func (m *manifests) checkMemoryLimiter(id string, env map[string]string, limits corev1.ResourceList) {
	value, ok := env[memoryLimitEnv]
	if !ok {
		m.fail("%s: no %s (memory_limiter's limit) beside the container's memory limit", id, memoryLimitEnv)
		return
	}
	mib, err := strconv.ParseFloat(value, 64)
	limit, hasLimit := limits[corev1.ResourceMemory]
	if err != nil || !hasLimit {
		m.fail("%s: %s=%q is not a number of MiB under a memory limit", id, memoryLimitEnv, value)
		return
	}
	limitMiB := float64(limit.Value()) / (1 << 20)
	if mib > maxMemoryLimitShare*limitMiB {
		m.fail("%s: %s=%s is above %.0f%% of the container's memory limit %s (%.0f MiB at most)", id,
			memoryLimitEnv, value, 100*maxMemoryLimitShare, limit.String(), maxMemoryLimitShare*limitMiB)
	}
}

// checkGatewaysDNS: the name resolves to every gateway pod only when it is a headless Service selecting them.
func (m *manifests) checkGatewaysDNS(id, namespace, name string) {
	serviceName, rest, _ := strings.Cut(name, ".")
	serviceNamespace, domain, _ := strings.Cut(rest, ".")
	if domain != clusterDomain {
		m.fail("%s: %s=%q is not <service>.<namespace>.%s", id, gatewaysDNSEnv, name, clusterDomain)
		return
	}
	for _, svc := range m.services {
		if svc.Name != serviceName || svc.Namespace != serviceNamespace {
			continue
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			m.fail("%s: %s names Service %s, which is not headless (clusterIP: None): DNS would give one "+
				"virtual IP, not each gateway", id, gatewaysDNSEnv, serviceName)
		}
		for _, w := range m.selecting(svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector)) {
			if w.kind == "Deployment" {
				return
			}
		}
		m.fail("%s: %s names Service %s, which selects no Deployment", id, gatewaysDNSEnv, serviceName)
		return
	}
	m.fail("%s: %s=%q names no Service of these manifests (namespace %s)", id, gatewaysDNSEnv, name, namespace)
}

// checkConfigFiles: every --config=PATH lies in a mounted ConfigMap that has the key; returns the files' texts.
func (m *manifests) checkConfigFiles(id string, w workload, c corev1.Container) []string {
	volumes := map[string]corev1.Volume{}
	for _, v := range w.template.Spec.Volumes {
		volumes[v.Name] = v
	}
	var texts []string
	for _, arg := range c.Args {
		file, ok := strings.CutPrefix(arg, configFlag)
		if !ok {
			continue
		}
		text, err := m.mountedKey(w.namespace, volumes, c.VolumeMounts, file)
		if err != nil {
			m.fail("%s: %s: %v", id, arg, err)
			continue
		}
		texts = append(texts, text)
	}
	if len(texts) == 0 {
		m.fail("%s: no %sPATH argument naming a collector config", id, configFlag)
	}
	return texts
}

func (m *manifests) mountedKey(namespace string, volumes map[string]corev1.Volume, mounts []corev1.VolumeMount,
	file string) (string, error) {
	for _, mount := range mounts {
		if path.Dir(file) != path.Clean(mount.MountPath) {
			continue
		}
		volume, ok := volumes[mount.Name]
		if !ok || volume.ConfigMap == nil {
			return "", fmt.Errorf("mounted from %q, which is not a configMap volume of the pod", mount.Name)
		}
		configMap, ok := m.configMaps[namespace+"/"+volume.ConfigMap.Name]
		if !ok {
			return "", fmt.Errorf("ConfigMap %s is not among the manifests", volume.ConfigMap.Name)
		}
		key := path.Base(file)
		for _, item := range volume.ConfigMap.Items {
			if item.Path == key {
				key = item.Key
			}
		}
		text, ok := configMap.Data[key]
		if !ok {
			return "", fmt.Errorf("ConfigMap %s has no key %q", configMap.Name, key)
		}
		return text, nil
	}
	return "", fmt.Errorf("no volumeMount at %s", path.Dir(file))
}

// checkProbe: the probe asks the collector's health_check extension, on the port the configs give it.
func (m *manifests) checkProbe(id, what string, probe *corev1.Probe, c corev1.Container, configs []string) {
	if probe == nil || probe.HTTPGet == nil {
		m.fail("%s: no %s.httpGet (the health_check extension answers it)", id, what)
		return
	}
	port, ok := containerPort(c, probe.HTTPGet.Port)
	if !ok {
		m.fail("%s: %s port %s is not a port of the container", id, what, probe.HTTPGet.Port.String())
		return
	}
	endpoint := lastValue(configs, "extensions", "health_check", "endpoint")
	_, configured, err := net.SplitHostPort(endpoint)
	if err != nil || configured != strconv.Itoa(int(port)) {
		m.fail("%s: %s asks port %d, but health_check listens on %q", id, what, port, endpoint)
	}
}

func containerPort(c corev1.Container, port intstr.IntOrString) (int32, bool) {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) ||
			(port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// lastValue returns the string at keys in the last config that sets it: the collector merges --config files in
// order, a later scalar replacing an earlier one.
func lastValue(configs []string, keys ...string) string {
	found := ""
	for _, text := range configs {
		var node any
		if yaml.Unmarshal([]byte(text), &node) != nil {
			continue
		}
		for _, key := range keys {
			mapping, _ := node.(map[string]any)
			node = mapping[key]
		}
		if value, ok := node.(string); ok {
			found = value
		}
	}
	return found
}

func (m *manifests) checkService(svc *corev1.Service) {
	id := fmt.Sprintf("Service %s", svc.Name)
	selected := m.selecting(svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector))
	if len(selected) == 0 {
		m.fail("%s: selector %v matches no workload's pod template", id, svc.Spec.Selector)
		return
	}
	for _, port := range svc.Spec.Ports {
		target := port.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(port.Port)
		}
		for _, w := range selected {
			if !anyContainerPort(w.template.Spec.Containers, target) {
				m.fail("%s: port %s targets %s, which %s %s's containers do not declare", id, port.Name,
					target.String(), w.kind, w.name)
			}
		}
	}
}

func anyContainerPort(containers []corev1.Container, port intstr.IntOrString) bool {
	for _, c := range containers {
		if _, ok := containerPort(c, port); ok {
			return true
		}
	}
	return false
}

// checkBudget: the budget covers a Deployment and still lets a drain evict one of its pods.
func (m *manifests) checkBudget(pdb *policyv1.PodDisruptionBudget) {
	id := fmt.Sprintf("PodDisruptionBudget %s", pdb.Name)
	selector, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		m.fail("%s: %v", id, err)
		return
	}
	covered := m.selecting(pdb.Namespace, selector)
	if len(covered) == 0 {
		m.fail("%s: selector matches no workload's pod template", id)
	}
	for _, w := range covered {
		if pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int &&
			pdb.Spec.MinAvailable.IntVal >= w.replicas {
			m.fail("%s: minAvailable %d leaves no pod of %s (%d replicas) to evict: drains block",
				id, pdb.Spec.MinAvailable.IntVal, w.name, w.replicas)
		}
		if pdb.Spec.MaxUnavailable != nil && pdb.Spec.MaxUnavailable.Type == intstr.Int &&
			pdb.Spec.MaxUnavailable.IntVal < 1 {
			m.fail("%s: maxUnavailable %d blocks every drain", id, pdb.Spec.MaxUnavailable.IntVal)
		}
	}
}
