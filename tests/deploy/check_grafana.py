"""The Grafana dashboard is valid JSON, uses only exported metrics, and shows all of them."""
import json
import sys

from troupe_metrics import METRICS, metric_names

dash = json.load(open(sys.argv[1]))
errors = []
for key in ("title", "uid", "panels", "templating", "schemaVersion"):
    if key not in dash:
        errors.append(f"dashboard has no {key}")
seen = set()
ids = set()
for panel in dash.get("panels", []):
    title = panel.get("title", "?")
    if panel.get("id") in ids:
        errors.append(f"duplicate panel id {panel.get('id')}")
    ids.add(panel.get("id"))
    grid = panel.get("gridPos", {})
    if not all(k in grid for k in ("x", "y", "w", "h")) or grid.get("x", 0) + grid.get("w", 0) > 24:
        errors.append(f"{title}: bad gridPos {grid}")
    if not panel.get("targets"):
        errors.append(f"{title}: no queries")
    for target in panel.get("targets", []):
        names = metric_names(target.get("expr", ""))
        if not names:
            errors.append(f"{title}: query {target.get('expr')!r} uses no troupe metric")
        for m in names:
            if m not in METRICS:
                errors.append(f"{title}: unknown metric {m}")
        seen |= names
for m in sorted(set(METRICS) - seen):
    errors.append(f"no panel shows {m}")
for e in errors:
    print("FAIL:", e)
print(f"{len(dash.get('panels', []))} panels, {len(seen)} metrics shown, {len(errors)} problems")
sys.exit(1 if errors else 0)
