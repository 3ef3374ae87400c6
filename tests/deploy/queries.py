#!/usr/bin/python3
"""Every PromQL expression an operator gets from deploy/: the alert rules and the Grafana dashboard.

  queries.py list              JSON list of {"from", "name", "expr", "selectors"} (dashboard variables
                               filled in the way Grafana would)
  queries.py check URL ALERT…  asks the Prometheus server at URL for each expression and fails unless
                               each returns data, every metric selector in it matches a series, and
                               each named ALERT is firing there.
An alert's expression is asked for without its final threshold (`> 0`, `== 0`): its data must exist
even when it does not fire.
"""
import json, re, sys, time, urllib.parse, urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/spanwatch.rules.yml"
DASHBOARD = ROOT / "deploy/grafana/spanwatch.json"
# What Grafana substitutes for the dashboard's variables; the lab's scrapes come every second.
VARS = {"$instance": ".*", "$__rate_interval": "30s", "$__range": "5m", "${datasource}": ""}
KEYWORDS = {"sum", "by", "rate", "increase", "scalar", "without", "on", "ignoring", "group_left",
            "group_right", "and", "or", "unless", "bool", "offset", "max", "min", "avg", "count",
            "label_values", "histogram_quantile", "topk", "bottomk", "abs", "clamp_min", "le"}


def selectors(expr):
    """Metric names used in an expression (identifiers followed by `{` or `[` or standing alone)."""
    no_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    no_labels = re.sub(r"\{[^}]*\}", "{}", no_strings)
    no_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", no_labels)
    names = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", no_groupings)
    return sorted({n for n in names if n not in KEYWORDS and not re.fullmatch(r"\d+[smhd]?", n)
                   and n not in {"s", "m", "h", "d"}})


def queries():
    out = []
    for g in yaml.safe_load(RULES.read_text())["groups"]:
        for r in g["rules"]:
            e = " ".join(r["expr"].split())
            bare = re.sub(r"\s*(>=|<=|==|!=|>|<)\s*[0-9.]+\s*$", "", e)
            out.append({"from": "rules", "name": r.get("alert") or r.get("record"), "expr": bare,
                        "full": e, "selectors": selectors(bare)})
    dash = json.loads(DASHBOARD.read_text())
    for v in dash["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q["query"])
            out.append({"from": "dashboard", "name": f"variable {v['name']}", "expr": m.group(1),
                        "label": m.group(2), "selectors": [m.group(1)]})
    for p in dash["panels"]:
        for t in p.get("targets", []):
            e = t["expr"]
            for k, val in VARS.items():
                e = e.replace(k, val)
            out.append({"from": "dashboard", "name": f"{p['title']} ({t['refId']})", "expr": e,
                        "selectors": selectors(e)})
    return out


def api(url, path, **params):
    q = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/api/v1/{path}?{q}", timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {body}")
    return body["data"]


def check(url, alerts):
    bad, asked = [], 0
    for q in queries():
        asked += 1
        try:
            res = api(url, "query", query=q["expr"])["result"]
        except Exception as e:  # a malformed expression answers 400
            bad.append(f"{q['from']}: {q['name']}: {q['expr']}: {e}")
            continue
        if not res:
            bad.append(f"{q['from']}: {q['name']}: no data for {q['expr']}")
        if q.get("label") and not any(q["label"] in s["metric"] for s in res):
            bad.append(f"{q['from']}: {q['name']}: no label {q['label']}")
        for sel in q["selectors"]:
            if not api(url, "series", **{"match[]": sel}):
                bad.append(f"{q['from']}: {q['name']}: selector {sel} matches no series")
    firing = {}
    deadline = time.time() + 20
    while True:
        firing = {a["labels"]["alertname"]: a for a in api(url, "alerts")["alerts"] if a["state"] == "firing"}
        if all(a in firing for a in alerts) or time.time() > deadline:
            break
        time.sleep(1)
    for a in alerts:
        if a not in firing:
            bad.append(f"alert {a} is not firing (firing: {sorted(firing)})")
    print(json.dumps({"asked": asked, "firing": sorted(firing)}))
    if bad:
        print("\n".join(bad))
        sys.exit(1)
    print(f"prometheus: {asked} alert and dashboard expressions return data; firing: {', '.join(sorted(firing))}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["list"]:
        print(json.dumps(queries(), indent=1))
    elif sys.argv[1:2] == ["check"]:
        check(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
