#!/usr/bin/env python3
"""Self and inclusive instruction counts per function symbol from a callgrind output file.

callgrind_annotate splits a function's costs by source file when code from other files was
inlined into it, so a grep of its output finds only a part of an inlined-into function. Here a
function's cost is everything recorded under its `fn=` entries, whatever file the lines came from,
plus (inclusive) the costs of the calls it makes to other functions.

usage: cg-functions.py CALLGRIND_OUT NAME...   prints "NAME<TAB>self<TAB>inclusive" for each
NAME, summed over the symbols that contain NAME as a substring (Ir, first event only); a NAME
ending in "$" matches only symbols that end with it (a method, not the closures inside it, which
its inclusive count already holds).
"""
import re
import sys


def parse(path):
    names = {}
    self_cost = {}
    incl_calls = {}
    fn = None
    callee = None
    take_call = False
    for line in open(path, errors="replace"):
        if take_call:
            take_call = False
            parts = line.split()
            if len(parts) >= 2 and fn is not None and callee != fn:
                incl_calls[fn] = incl_calls.get(fn, 0) + int(parts[1])
            continue
        c = line[:1]
        if c.isdigit() or c in "+-*":
            parts = line.split()
            if len(parts) >= 2 and fn is not None:
                self_cost[fn] = self_cost.get(fn, 0) + int(parts[1])
            continue
        if line.startswith("fn=") or line.startswith("cfn="):
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m:
                key = m.group(1)
                if m.group(2):
                    names[key] = m.group(2)
            else:
                key = line.split("=", 1)[1].strip()
                names[key] = key
            if line.startswith("fn="):
                fn = key
            else:
                callee = key
        elif line.startswith("calls="):
            take_call = True
    return names, self_cost, incl_calls


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    names, self_cost, incl_calls = parse(sys.argv[1])
    for want in sys.argv[2:]:
        if want.endswith("$"):
            keys = [k for k, n in names.items() if n.endswith(want[:-1])]
        else:
            keys = [k for k, n in names.items() if want in n]
        s = sum(self_cost.get(k, 0) for k in keys)
        i = s + sum(incl_calls.get(k, 0) for k in keys)
        print(f"{want}\t{s}\t{i}")


if __name__ == "__main__":
    main()
