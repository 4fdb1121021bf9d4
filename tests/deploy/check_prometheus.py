"""Alert rules only use metrics trouped exports and cover the promised alerts."""
import sys

import yaml

from troupe_metrics import METRICS, metric_names

rules_file = sys.argv[1]
doc = yaml.safe_load(open(rules_file))
errors = []
alerts = {}
for group in doc["groups"]:
    for rule in group["rules"]:
        name = rule.get("alert") or rule.get("record")
        alerts[name] = rule
        for m in metric_names(rule["expr"]):
            if m not in METRICS:
                errors.append(f"{name}: unknown metric {m}")
        if "alert" in rule:
            for key in ("summary", "description"):
                if not rule.get("annotations", {}).get(key):
                    errors.append(f"{name}: no {key} annotation")
            if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
                errors.append(f"{name}: severity must be warning or critical")

# The alerts the deployment promises: breaker open, degraded, queue saturated, jobs dying.
for required, metric in [("TroupeCircuitBreakerOpen", "troupe_circuit_state"),
                         ("TroupeDegraded", "troupe_actor_restarts_total"),
                         ("TroupeQueueSaturated", "troupe_mailbox_depth"),
                         ("TroupeJobsDying", "troupe_jobs_completed_total")]:
    if required not in alerts:
        errors.append(f"missing alert {required}")
    elif metric not in metric_names(alerts[required]["expr"]):
        errors.append(f"{required} does not use {metric}")

for e in errors:
    print("FAIL:", e)
print(f"{len(alerts)} rules checked, {len(errors)} problems")
sys.exit(1 if errors else 0)
