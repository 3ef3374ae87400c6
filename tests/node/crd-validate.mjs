// Validates prometheus-operator resources (PodMonitor, PrometheusRule) in YAML files against the
// operator's CRD schemas, as packaged by @kubernetes-models/prometheus-operator (each model's
// validate() throws on a schema violation). Other kinds are left to kubernetes-validate.
// Usage: node crd-validate.mjs FILE.yaml...
import { PodMonitor, PrometheusRule, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import * as yaml from "js-yaml";
import { readFileSync } from "node:fs";

const models = { PodMonitor, PrometheusRule, ServiceMonitor };
let bad = 0, checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (!doc || !(doc.kind in models) || doc.apiVersion !== "monitoring.coreos.com/v1") continue;
    try {
      new models[doc.kind](doc).validate();
      checked++;
      console.log(`${file}: ${doc.kind}/${doc.metadata.name} valid against the prometheus-operator CRD schema`);
    } catch (e) {
      bad++;
      console.log(`${file}: ${doc.kind}/${doc.metadata.name}: ${e.message}`);
    }
  }
}
console.log(`checked ${checked}, invalid ${bad}`);
process.exit(bad ? 1 : 0);
