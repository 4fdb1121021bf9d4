"""Static checks of the Dockerfile (no Docker engine runs here, so CI cannot
build the image): its build steps are the ones CI runs, the runtime stage is
hardened, and its runtime packages provide every shared library the built
binaries load.

usage: check_dockerfile.py REPO_ROOT [BINARY...]
"""
import json
import os
import re
import subprocess
import sys

root = sys.argv[1]
binaries = sys.argv[2:]
errors = []


def fail(msg):
    errors.append(msg)


text = open(os.path.join(root, "Dockerfile")).read()
# Join continuation lines so each instruction is one line.
instructions = [l.strip() for l in re.sub(r"\\\n", " ", text).splitlines()
                if l.strip() and not l.strip().startswith("#")]
stages = [i for i in instructions if i.upper().startswith("FROM ")]
if len(stages) < 2:
    fail("not a multi-stage build")
for s in stages:
    if not re.match(r"FROM debian:12(-slim)?\b", s):
        fail(f"stage not on Debian 12: {s}")

build_stage = []
runtime_stage = []
current = None
for i in instructions:
    if i.upper().startswith("FROM "):
        current = build_stage if not build_stage else runtime_stage
    current.append(i)
build_text = "\n".join(build_stage)
runtime_text = "\n".join(runtime_stage)

# Same script and preset as CI: .ci/run -> make test -> scripts/install-deps.sh + the Makefile's PRESET.
makefile = open(os.path.join(root, "Makefile")).read()
m = re.search(r"^PRESET\s*\?=\s*(\S+)", makefile, re.M)
ci_preset = m.group(1) if m else None
if "bash scripts/install-deps.sh" not in build_text:
    fail("build stage does not run scripts/install-deps.sh")
if "scripts/install-deps.sh" not in makefile:
    fail("the Makefile (CI) no longer runs scripts/install-deps.sh: keep the Dockerfile in step")
presets = {p["name"] for p in json.load(open(os.path.join(root, "CMakePresets.json")))["configurePresets"]}
m = re.search(r"cmake --preset (\S+)", build_text)
if not m:
    fail("build stage does not configure with a CMake preset")
else:
    if m.group(1) != ci_preset:
        fail(f"Dockerfile preset {m.group(1)} != CI's preset {ci_preset}")
    if m.group(1) not in presets:
        fail(f"preset {m.group(1)} not in CMakePresets.json")
    if f"cmake --build build/{m.group(1)}" not in build_text:
        fail("build stage does not build the preset's build directory")
if "cmake --install" not in build_text:
    fail("build stage does not cmake --install")

for needed, why in [
    (r"^USER (?!root|0\b)\S+", "runs as a non-root USER"),
    (r"^EXPOSE .*\b50051\b.*\b9464\b", "EXPOSEs 50051 and 9464"),
    (r"^HEALTHCHECK .*troupectl.*\bhealth\b", "HEALTHCHECK runs troupectl health"),
    (r"^STOPSIGNAL SIGTERM$", "STOPSIGNAL SIGTERM"),
    (r"^COPY deploy/docker/trouped.yaml /etc/troupe/trouped.yaml$", "ships the 0.0.0.0 config at /etc/troupe/trouped.yaml"),
    (r'^CMD \["--config", "/etc/troupe/trouped.yaml"\]$', "runs with --config /etc/troupe/trouped.yaml"),
    # The job store ($STATE_DIRECTORY/jobs.db) on a volume, writable by the user.
    (r"^ENV STATE_DIRECTORY=/var/lib/troupe$", "keeps the store in /var/lib/troupe (ENV STATE_DIRECTORY)"),
    (r'^VOLUME \["/var/lib/troupe"\]$', "declares /var/lib/troupe a VOLUME"),
    (r"install -d -o troupe -g troupe -m 0750 /var/lib/troupe", "creates /var/lib/troupe owned by the troupe user"),
]:
    if not re.search(needed, runtime_text, re.M):
        fail(f"runtime stage: expected it {why}")
if re.search(r"\b(build-essential|cmake|-dev)\b", runtime_text):
    fail("runtime stage installs build tools or -dev packages")

docker_cfg = open(os.path.join(root, "deploy/docker/trouped.yaml")).read()
for key in ("grpc_address: 0.0.0.0:50051", "metrics_address: 0.0.0.0:9464"):
    if key not in docker_cfg:
        fail(f"deploy/docker/trouped.yaml lacks {key!r}")
# A store.path in the image's config must be on the volume.
m = re.search(r"^store:\n(?:[ #].*\n)*?\s+path:\s*(\S+)", docker_cfg, re.M)
if m and not m.group(1).startswith("/var/lib/troupe/"):
    fail(f"deploy/docker/trouped.yaml keeps its store at {m.group(1)}, outside the /var/lib/troupe volume")
if re.search(r"^store:\n(?:[ #].*\n)*?\s+kind:\s*memory", docker_cfg, re.M):
    fail("deploy/docker/trouped.yaml uses the memory store: a restarted container loses its jobs")

# Runtime packages must provide every library the binaries need.
m = re.search(r"apt-get install[^\n]*?--no-install-recommends\s+(.*?)\s*&&", runtime_text)
runtime_pkgs = m.group(1).split() if m else []
if not runtime_pkgs:
    fail("cannot find the runtime stage's apt-get install list")
elif binaries:
    # Dependency closure from dpkg's database (no apt lists needed). Runtime
    # packages not installed here (tini, ca-certificates) provide no library.
    closure = set()
    queue = list(runtime_pkgs)
    while queue:
        pkg = queue.pop()
        if pkg in closure:
            continue
        closure.add(pkg)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", pkg],
                           capture_output=True, text=True)
        if r.returncode != 0:
            continue
        for alternative in re.split(r"[,|]", r.stdout):
            name = re.sub(r"\(.*?\)", "", alternative).strip().split(":")[0]
            if name:
                queue.append(name)
    needs = {}  # library path -> binaries that load it
    for binary in binaries:
        if not os.path.exists(binary):
            fail(f"{binary} not built")
            continue
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        for path in re.findall(r"=> (\S+) \(", ldd):
            needs.setdefault(path, []).append(os.path.basename(binary))

    def variants(path):
        return {path, os.path.realpath(path), path.replace("/usr/lib/", "/lib/", 1),
                path.replace("/lib/", "/usr/lib/", 1)}

    # One dpkg -S for every candidate path: it is slow per call.
    candidates = sorted({v for p in needs for v in variants(p)})
    r = subprocess.run(["dpkg", "-S"] + candidates, capture_output=True, text=True)
    owner_of = {}
    for line in r.stdout.splitlines():
        pkgs, _, path = line.partition(": ")
        owner_of[path.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    checked = len(needs)
    for path, users in sorted(needs.items()):
        owner = next((owner_of[v] for v in variants(path) if v in owner_of), None)
        if owner is None:
            fail(f"{users[0]}: {path} belongs to no Debian package")
        elif owner not in closure:
            fail(f"{', '.join(users)} need {path} from {owner}, which the runtime stage does not install")
    print(f"{checked} shared libraries of {len(binaries)} binaries covered by {len(runtime_pkgs)} runtime packages")

for e in errors:
    print("FAIL:", e)
print(f"Dockerfile: {len(instructions)} instructions, {len(errors)} problems")
sys.exit(1 if errors else 0)
