"""Kubernetes manifests: every document parses, has what it needs, and agrees
with the trouped.yaml in the ConfigMap (ports, probes, grace period > drain);
the gRPC port has TLS and tokens from mounted Secrets, never inlined. The job
store decides the rest: SQLite (deploy/k8s) sits on a PersistentVolumeClaim
written by one pod; PostgreSQL (deploy/k8s/cluster) is shared by several pods
with no volume, its password from a Secret as PGPASSWORD, each pod named by
TROUPE_REPLICA, a PodDisruptionBudget, liveness that a database outage does
not fail. With a trouped binary as the second argument, the ConfigMap's
trouped.yaml is also loaded by `trouped --check-config`, with the Secrets'
files made up here (and, for PostgreSQL, the one error allowed: no database
at a DSN pointed at a closed port)."""
import os
import socket
import re
import subprocess
import sys
import tempfile

import yaml

from troupe_metrics import METRICS, metric_names

k8s_dir = sys.argv[1]
trouped = sys.argv[2] if len(sys.argv) > 2 else None
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

for kind in ("ConfigMap", "Deployment", "Service", "ServiceMonitor"):
    if kind not in docs:
        fail(f"no {kind}")
if errors:
    for e in errors:
        print("FAIL:", e)
    sys.exit(1)

# The daemon's own config, as the pod will read it.
cm = docs["ConfigMap"]
config = yaml.safe_load(cm["data"]["trouped.yaml"])
store = config.get("store") or {}
shared = store.get("kind", "sqlite") == "postgres"
if shared:
    if "PodDisruptionBudget" not in docs:
        fail("no PodDisruptionBudget: a node drain could take every replica at once")
else:
    if "PersistentVolumeClaim" not in docs:
        fail("no PersistentVolumeClaim for the SQLite store")
    # More pods than one would each need their own store and would not know
    # each other's job ids: nothing may scale the Deployment past one.
    if "HorizontalPodAutoscaler" in docs:
        fail("a HorizontalPodAutoscaler scales a single-writer store past one pod")
if errors:
    for e in errors:
        print("FAIL:", e)
    sys.exit(1)
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

mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
volumes = {v["name"]: v for v in pod.get("volumes", [])}


def secret_of(path):
    """The Secret (name, key) a file path in the pod comes from, or None."""
    for mount_path, mount in mounts.items():
        if path.startswith(mount_path.rstrip("/") + "/"):
            secret = volumes.get(mount["name"], {}).get("secret")
            if secret:
                return secret.get("secretName"), path[len(mount_path.rstrip("/")) + 1:]
    return None


# gRPC: TLS and tokens, every secret a file from a mounted Secret.
tls = server.get("tls") or {}
for key in ("cert_file", "key_file"):
    if not tls.get(key):
        fail(f"ConfigMap server.tls.{key} missing: the gRPC port must have TLS")
    elif not secret_of(tls[key]):
        fail(f"server.tls.{key} {tls[key]} is not in a mounted Secret")
identities = (config.get("auth") or {}).get("identities") or []
if not identities:
    fail("ConfigMap has no auth identities: anyone reaching the pod could submit")
for identity in identities:
    name = identity.get("name")
    if "token" in identity:
        fail(f"identity {name}: a plain token in the ConfigMap")
    if identity.get("token_file") and not secret_of(identity["token_file"]):
        fail(f"identity {name}: token_file {identity['token_file']} is not in a mounted Secret")
    if not (identity.get("token_file") or identity.get("token_sha256")):
        fail(f"identity {name}: needs token_file (a Secret) or token_sha256")
metrics_exposed = metrics_host in ("0.0.0.0", "[::]", "::")
if server.get("insecure"):
    # Allowed only for what has no other way: plain-HTTP /metrics.
    if not metrics_exposed:
        fail("insecure: true with /metrics on loopback: nothing needs it")
    if not (server.get("metrics_auth") or {}).get("password_file"):
        fail("insecure: true for /metrics without basic auth")
password_file = (server.get("metrics_auth") or {}).get("password_file")
if password_file and not secret_of(password_file):
    fail(f"metrics_auth.password_file {password_file} is not in a mounted Secret")
for volume in volumes.values():
    if "secret" in volume and volume["secret"].get("defaultMode", 0o644) & 0o007:
        fail(f"Secret volume {volume['name']} is readable by others (defaultMode)")

# Probes: the kubelet's native gRPC probes speak plaintext, so over TLS they
# are troupectl health against the local gRPC port, trusting the mounted CA.
# With a shared store health is NOT_SERVING while the database is away, which
# a restart does not mend: liveness is then a TCP connect to the gRPC port.
health_probes = ("readinessProbe", "startupProbe") if shared else (
    "readinessProbe", "livenessProbe", "startupProbe")
if shared:
    port = c.get("livenessProbe", {}).get("tcpSocket", {}).get("port")
    if port not in ("grpc", grpc_port):
        fail(f"livenessProbe must connect to the gRPC port over TCP (got {c.get('livenessProbe')}): "
             "health is NOT_SERVING during a database outage")
for probe_name in health_probes:
    probe = c.get(probe_name)
    command = (probe or {}).get("exec", {}).get("command", [])
    if not probe or command[:1] != ["troupectl"] or command[-1:] != ["health"]:
        fail(f"{probe_name} is not `troupectl ... health`")
        continue
    flags = dict(zip(command[1:-1:2], command[2:-1:2]))
    if flags.get("--address") != f"localhost:{grpc_port}":
        fail(f"{probe_name} --address {flags.get('--address')} != localhost:{grpc_port}")
    if not flags.get("--ca") or not secret_of(flags["--ca"]):
        fail(f"{probe_name} does not trust a CA from a mounted Secret (--ca)")
    deadline = duration_seconds(flags.get("--deadline", "10s"))
    if deadline >= probe.get("timeoutSeconds", 1):
        fail(f"{probe_name} --deadline {deadline}s must end before timeoutSeconds")
live = c.get("livenessProbe", {})
if live and live.get("periodSeconds", 10) * live.get("failureThreshold", 3) < drain:
    fail("livenessProbe would restart a pod in the middle of a drain")

args = c.get("args", [])
if "--config" not in args or args[args.index("--config") + 1] != "/etc/troupe/trouped.yaml":
    fail("container does not run with --config /etc/troupe/trouped.yaml")
if "/etc/troupe" not in mounts:
    fail("ConfigMap not mounted at /etc/troupe")
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

env = {e["name"]: e for e in c.get("env", [])}


def check_shared_store():
    """PostgreSQL: several pods, no volume, the password from a Secret."""
    replicas = dep["spec"].get("replicas", 1)
    if replicas < 2:
        fail(f"Deployment has {replicas} replica(s): a shared store is for several")
    if dep["spec"].get("strategy", {}).get("type", "RollingUpdate") != "RollingUpdate":
        fail("Deployment strategy must be RollingUpdate: a stopping replica hands its jobs over")
    for volume in volumes.values():
        if "persistentVolumeClaim" in volume:
            fail(f"volume {volume['name']} is a PersistentVolumeClaim: the pods keep nothing")
    dsn = store.get("dsn", "")
    if re.search(r"password\s*=|://[^/@]*:[^/@]*@", dsn):
        fail("ConfigMap store.dsn holds a password: give it as PGPASSWORD from a Secret")
    password = env.get("PGPASSWORD", {})
    ref = password.get("valueFrom", {}).get("secretKeyRef", {})
    if "value" in password or not ref.get("name") or not ref.get("key"):
        fail("PGPASSWORD must come from a Secret (valueFrom.secretKeyRef)")
    for name, e in env.items():
        if "value" in e and re.search(r"pass|secret|token", name, re.I):
            fail(f"env {name} inlines a secret")
    replica = env.get("TROUPE_REPLICA", {}).get("valueFrom", {}).get("fieldRef", {})
    if replica.get("fieldPath") != "metadata.name":
        fail("TROUPE_REPLICA must be the pod's name (valueFrom.fieldRef metadata.name)")
    pdb = docs["PodDisruptionBudget"]
    if any(pdb["spec"].get("selector", {}).get("matchLabels", {}).get(k) != v
           for k, v in selector.items()):
        fail("PodDisruptionBudget does not select the Deployment's pods")
    if "minAvailable" not in pdb["spec"] and pdb["spec"].get("maxUnavailable", 0) < 1:
        fail("PodDisruptionBudget allows no eviction")
    hpa = docs.get("HorizontalPodAutoscaler")
    if hpa:
        target = hpa["spec"].get("scaleTargetRef", {})
        if target.get("kind") != "Deployment" or target.get("name") != dep["metadata"]["name"]:
            fail("HorizontalPodAutoscaler does not scale the Deployment")
        low, high = hpa["spec"].get("minReplicas", 1), hpa["spec"].get("maxReplicas", 0)
        if low < 2 or high < low:
            fail(f"HorizontalPodAutoscaler replicas {low}..{high}: keep at least 2, max >= min")
        check_queue_autoscaling(hpa)


def check_queue_autoscaling(hpa):
    """An External metric of the HPA is one trouped exports, served by the
    prometheus-adapter rule shipped in prometheus-adapter/rules.yaml."""
    external = [m["external"] for m in hpa["spec"].get("metrics", []) if m.get("type") == "External"]
    if not external:
        return
    rules_path = os.path.join(k8s_dir, "prometheus-adapter", "rules.yaml")
    if not os.path.exists(rules_path):
        fail("the HPA scales on an External metric but prometheus-adapter/rules.yaml is missing")
        return
    adapter = yaml.safe_load(open(rules_path))
    rules = yaml.safe_load(adapter.get("data", {}).get("config.yaml", "")) or {}
    served = {}
    for rule in rules.get("externalRules", []):
        name = rule.get("name", {}).get("as", "")
        series = metric_names(rule.get("seriesQuery", ""))
        if len(series) != 1 or not series <= set(METRICS):
            fail(f"adapter rule {name!r}: seriesQuery names no single metric trouped exports")
        query = rule.get("metricsQuery", "")
        if "<<.Series>>" not in query or "<<.LabelMatchers>>" not in query:
            fail(f"adapter rule {name!r}: metricsQuery must use <<.Series>> and <<.LabelMatchers>>")
        if rule.get("resources", {}).get("overrides", {}).get("namespace", {}).get("resource") \
                != "namespace":
            fail(f"adapter rule {name!r}: map the namespace label to the namespace resource")
        served[name] = rule
    for metric in external:
        name = metric.get("metric", {}).get("name", "")
        if name not in served:
            fail(f"HPA External metric {name!r}: no rule in prometheus-adapter/rules.yaml serves it")
        target = metric.get("target", {})
        if target.get("type") != "AverageValue" or not str(target.get("averageValue", "")):
            fail(f"HPA External metric {name!r}: target AverageValue (jobs waiting per replica)")


def check_sqlite_store():
    """SQLite: one writer per file, on a volume that outlives the pod."""
    global store_path
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


store_path = "postgres: " + str(store.get("dsn", ""))
if shared:
    check_shared_store()
else:
    check_sqlite_store()

sm = docs["ServiceMonitor"]
if any(svc["metadata"].get("labels", {}).get(k) != v for k, v in sm["spec"]["selector"]["matchLabels"].items()):
    fail("ServiceMonitor selector does not match the Service's labels")
scrapes = [e for e in sm["spec"]["endpoints"] if e.get("port") == "metrics"]
if not scrapes:
    fail("ServiceMonitor does not scrape the metrics port")
elif server.get("metrics_auth") and not all(e.get("basicAuth") for e in scrapes):
    fail("ServiceMonitor scrapes /metrics without the basic auth it needs")


def refusing_dsn():
    """A DSN at a port on 127.0.0.1 that nothing listens on (bound, not
    listening, while this check runs)."""
    global held_port
    held_port = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held_port.bind(("127.0.0.1", 0))
    return f"host=127.0.0.1 port={held_port.getsockname()[1]} dbname=troupe user=troupe connect_timeout=5"


def check_config_loads():
    """trouped --check-config on the ConfigMap's trouped.yaml, each mounted
    file replaced by one made here (a CA-signed certificate for localhost,
    tokens, the metrics password)."""
    with tempfile.TemporaryDirectory() as tmp:
        text = cm["data"]["trouped.yaml"]
        for mount_path, mount in mounts.items():
            if "secret" in volumes.get(mount["name"], {}):
                local = os.path.join(tmp, mount["name"])
                os.makedirs(local, exist_ok=True)
                text = text.replace(mount_path.rstrip("/") + "/", local + "/")
        # The certificate, key and CA where the config expects them.
        cert_path = tls["cert_file"]
        mount_path = next(p for p in mounts if cert_path.startswith(p.rstrip("/") + "/"))
        tls_dir = os.path.join(tmp, mounts[mount_path]["name"])

        def run(*args):
            subprocess.run(args, check=True, capture_output=True, cwd=tmp)

        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "ca.key", "-out", os.path.join(tls_dir, "ca.crt"), "-days", "1",
            "-subj", "/CN=test-ca")
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", os.path.join(tls_dir, os.path.basename(tls["key_file"])), "-out",
            "server.csr", "-subj", "/CN=trouped")
        with open(os.path.join(tmp, "server.ext"), "w") as ext:
            ext.write("subjectAltName=DNS:localhost\n")
        run("openssl", "x509", "-req", "-in", "server.csr", "-CA", os.path.join(tls_dir, "ca.crt"),
            "-CAkey", "ca.key", "-CAcreateserial", "-out",
            os.path.join(tls_dir, os.path.basename(cert_path)),
            "-days", "1", "-extfile", "server.ext")
        if shared:
            # No database here: point the DSN at a port where nothing
            # listens, so that the probe fails at once; that must be the
            # only error.
            text = text.replace(store["dsn"], refusing_dsn(), 1)
        for path in re.findall(re.escape(tmp) + r"/[^\s\"']+", text):
            if not os.path.exists(path):
                with open(path, "w") as secret:
                    secret.write("made-up-secret-for-the-check\n")
        config_path = os.path.join(tmp, "trouped.yaml")
        with open(config_path, "w") as out:
            out.write(text)
        result = subprocess.run([trouped, "--check-config", config_path], capture_output=True,
                                text=True)
        if shared:
            errors_seen = [line for line in result.stderr.splitlines()
                           if not line.endswith("; nothing was started")]
            only_dsn = (result.returncode == 2 and len(errors_seen) == 1
                        and ": store.dsn: cannot reach the PostgreSQL server" in errors_seen[0])
            if not only_dsn:
                fail("trouped --check-config finds more wrong with the ConfigMap's trouped.yaml than "
                     "the unreachable database:\n" + result.stdout + result.stderr)
        elif result.returncode != 0:
            fail("trouped --check-config refuses the ConfigMap's trouped.yaml:\n"
                 + result.stdout + result.stderr)


if trouped and not errors:
    check_config_loads()

for e in errors:
    print("FAIL:", e)
print(f"{len(docs)} manifests checked (grpc {grpc_port}, metrics {metrics_port}, drain {drain}s, "
      f"grace {grace}s, store {store_path}), {len(errors)} problems")
sys.exit(1 if errors else 0)
