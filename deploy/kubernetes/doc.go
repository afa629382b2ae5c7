// Package kubernetes holds nerstream's Kubernetes manifests (common/, cpu/
// and gpu/, each a kustomization), the Prometheus alert rules and the
// Grafana dashboard, and the tests that check them without a cluster:
//
//   - every manifest decodes strictly into its Go type (k8s.io/api, the
//     prometheus-operator's monitoring/v1, and small typed structs of the
//     KEDA fields used), so a misspelt field fails;
//   - every file a kustomization names exists, and every manifest here is
//     named by one;
//   - the Deployments keep the rules that the README's Operations section
//     promises: non-root, read-only root file system, probes on /healthz and
//     /readyz, a grace period above shutdown_timeout, secrets from Secrets;
//   - the alert rules pass `promtool check rules`, a running member's
//     /metrics passes `promtool check metrics`, and every metric that the
//     rules and the dashboard query is one that the member exports.
//
// The package has no Go code of its own: the tests are its content.
package kubernetes
