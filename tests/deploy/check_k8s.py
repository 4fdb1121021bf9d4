"""Kubernetes manifests: every document parses, has what it needs, and agrees
with the trouped.yaml in the ConfigMap (ports, probes, grace period > drain),
and the job store sits on a PersistentVolumeClaim written by one pod."""
import os
import re
import sys

import yaml

k8s_dir = sys.argv[1]
errors = []


def fail(msg):
    errors.append(msg)


def duration_seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"bad duration {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


kustomization = yaml.safe_load(open(os.path.join(k8s_dir, "kustomization.yaml")))
if kustomization.get("kind") != "Kustomization":
    fail("kustomization.yaml is not a Kustomization")
if "namespace" in kustomization:
    fail("kustomization.yaml must stay namespace-agnostic (no namespace:)")

docs = {}
listed = kustomization.get("resources", [])
on_disk = sorted(f for f in os.listdir(k8s_dir) if f.endswith(".yaml") and f != "kustomization.yaml")
if sorted(listed) != on_disk:
    fail(f"kustomization resources {sorted(listed)} != manifests on disk {on_disk}")
for name in listed:
    for doc in yaml.safe_load_all(open(os.path.join(k8s_dir, name))):
        if doc is None:
            continue
        for key in ("apiVersion", "kind", "metadata"):
            if key not in doc:
                fail(f"{name}: document without {key}")
        if "namespace" in doc.get("metadata", {}):
            fail(f"{name}: hard-coded namespace")
        if not doc.get("metadata", {}).get("name"):
            fail(f"{name}: no metadata.name")
        docs[doc["kind"]] = doc

for kind in ("ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceMonitor"):
    if kind not in docs:
        fail(f"no {kind}")
# More pods than one would each need their own store and would not know each
# other's job ids: nothing may scale the Deployment past one.
if "HorizontalPodAutoscaler" in docs:
    fail("a HorizontalPodAutoscaler scales a single-writer store past one pod")
if errors:
    for e in errors:
        print("FAIL:", e)
    sys.exit(1)

# The daemon's own config, as the pod will read it.
cm = docs["ConfigMap"]
config = yaml.safe_load(cm["data"]["trouped.yaml"])
server = config["server"]
grpc_host, grpc_port = server["grpc_address"].rsplit(":", 1)
metrics_host, metrics_port = server["metrics_address"].rsplit(":", 1)
grpc_port, metrics_port = int(grpc_port), int(metrics_port)
drain = duration_seconds(server.get("shutdown", {}).get("drain_timeout", "30s"))
for host, what in ((grpc_host, "grpc_address"), (metrics_host, "metrics_address")):
    if host not in ("0.0.0.0", "[::]", "::"):
        fail(f"ConfigMap {what} listens on {host}: other pods and the kubelet cannot reach it")

dep = docs["Deployment"]
pod = dep["spec"]["template"]["spec"]
selector = dep["spec"]["selector"]["matchLabels"]
pod_labels = dep["spec"]["template"]["metadata"]["labels"]
if any(pod_labels.get(k) != v for k, v in selector.items()):
    fail("Deployment selector does not match its pod labels")
grace = pod.get("terminationGracePeriodSeconds", 30)
containers = pod["containers"]
if len(containers) != 1:
    fail("expected one container")
c = containers[0]
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
if ports.get("grpc") != grpc_port:
    fail(f"containerPort grpc {ports.get('grpc')} != ConfigMap grpc port {grpc_port}")
if ports.get("metrics") != metrics_port:
    fail(f"containerPort metrics {ports.get('metrics')} != ConfigMap metrics port {metrics_port}")

pre_stop = 0
exec_cmd = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
if exec_cmd[:1] == ["sleep"] and len(exec_cmd) == 2:
    pre_stop = float(exec_cmd[1])
elif "sleep" in c.get("lifecycle", {}).get("preStop", {}):
    pre_stop = float(c["lifecycle"]["preStop"]["sleep"]["seconds"])
else:
    fail("no preStop pause before SIGTERM")
if not grace > drain + pre_stop:
    fail(f"terminationGracePeriodSeconds {grace} must exceed drain_timeout {drain}s + preStop {pre_stop}s")

for probe_name in ("readinessProbe", "livenessProbe"):
    probe = c.get(probe_name)
    if not probe or "grpc" not in probe:
        fail(f"{probe_name} is not a native gRPC probe")
        continue
    if probe["grpc"].get("port") != grpc_port:
        fail(f"{probe_name} port {probe['grpc'].get('port')} != gRPC port {grpc_port}")
    if probe["grpc"].get("service", "") != "":
        fail(f"{probe_name} must check the overall health service \"\"")
live = c.get("livenessProbe", {})
if live and live.get("periodSeconds", 10) * live.get("failureThreshold", 3) < drain:
    fail("livenessProbe would restart a pod in the middle of a drain")

args = c.get("args", [])
if "--config" not in args or args[args.index("--config") + 1] != "/etc/troupe/trouped.yaml":
    fail("container does not run with --config /etc/troupe/trouped.yaml")
mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
if "/etc/troupe" not in mounts:
    fail("ConfigMap not mounted at /etc/troupe")
volumes = {v["name"]: v for v in pod.get("volumes", [])}
if volumes.get(mounts.get("/etc/troupe", {}).get("name"), {}).get("configMap", {}).get("name") != cm["metadata"]["name"]:
    fail("/etc/troupe is not the trouped ConfigMap")

sc = c.get("securityContext", {})
psc = pod.get("securityContext", {})
if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
    fail("not runAsNonRoot")
if not sc.get("readOnlyRootFilesystem"):
    fail("root filesystem is writable")
if sc.get("allowPrivilegeEscalation") is not False:
    fail("allowPrivilegeEscalation not false")
if "ALL" not in sc.get("capabilities", {}).get("drop", []):
    fail("capabilities not dropped")
res = c.get("resources", {})
for k in ("requests", "limits"):
    if not res.get(k, {}).get("cpu") or not res.get(k, {}).get("memory"):
        fail(f"resources.{k} needs cpu and memory")

ann = dep["spec"]["template"]["metadata"].get("annotations", {})
if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(metrics_port):
    fail("prometheus.io scrape annotations missing or on the wrong port")

svc = docs["Service"]
svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
for name, port in (("grpc", grpc_port), ("metrics", metrics_port)):
    p = svc_ports.get(name)
    if not p:
        fail(f"Service has no {name} port")
    elif p.get("port") != port or p.get("targetPort") not in (name, port):
        fail(f"Service port {name} does not lead to container port {port}")
if any(svc["spec"]["selector"].get(k) != v for k, v in selector.items()):
    fail("Service selector does not select the Deployment's pods")

pdb = docs.get("PodDisruptionBudget")
if pdb and pdb["spec"].get("minAvailable", 0) >= dep["spec"].get("replicas", 1):
    fail("PodDisruptionBudget would block every voluntary eviction")

# The job store: one writer per file, on a volume that outlives the pod.
if dep["spec"].get("replicas", 1) != 1:
    fail(f"Deployment has {dep['spec'].get('replicas')} replicas: one SQLite store has one writer")
if dep["spec"].get("strategy", {}).get("type") != "Recreate":
    fail("Deployment strategy must be Recreate (a rolling update runs two pods on one store)")
store = config.get("store", {})
if store.get("kind", "sqlite") != "sqlite":
    fail(f"ConfigMap store.kind {store.get('kind')!r}: the pod would lose its jobs on restart")
# Without store.path trouped uses $STATE_DIRECTORY/jobs.db: the container's
# env, else the image's ENV STATE_DIRECTORY=/var/lib/troupe (check_dockerfile.py).
state_dir = next((e["value"] for e in c.get("env", []) if e["name"] == "STATE_DIRECTORY"), "/var/lib/troupe")
store_path = store.get("path") or os.path.join(state_dir, "jobs.db")
store_dir = os.path.dirname(store_path)
store_mount = mounts.get(store_dir)
if not store_mount:
    fail(f"nothing is mounted at {store_dir}, the directory of the store {store_path}")
else:
    claim = volumes.get(store_mount["name"], {}).get("persistentVolumeClaim", {}).get("claimName")
    pvc = docs["PersistentVolumeClaim"]
    if claim != pvc["metadata"]["name"]:
        fail(f"{store_dir} is not the PersistentVolumeClaim {pvc['metadata']['name']} (got volume {store_mount['name']})")
    if store_mount.get("readOnly"):
        fail(f"{store_dir} is mounted read-only")
    if pvc["spec"].get("accessModes") != ["ReadWriteOnce"] and "ReadWriteOncePod" not in pvc["spec"].get("accessModes", []):
        fail("the store's PersistentVolumeClaim must be ReadWriteOnce(Pod)")
    if not pvc["spec"].get("resources", {}).get("requests", {}).get("storage"):
        fail("the store's PersistentVolumeClaim requests no storage")

sm = docs["ServiceMonitor"]
if any(svc["metadata"].get("labels", {}).get(k) != v for k, v in sm["spec"]["selector"]["matchLabels"].items()):
    fail("ServiceMonitor selector does not match the Service's labels")
if not any(e.get("port") == "metrics" for e in sm["spec"]["endpoints"]):
    fail("ServiceMonitor does not scrape the metrics port")

for e in errors:
    print("FAIL:", e)
print(f"{len(docs)} manifests checked (grpc {grpc_port}, metrics {metrics_port}, drain {drain}s, "
      f"grace {grace}s, store {store_path}), {len(errors)} problems")
sys.exit(1 if errors else 0)
