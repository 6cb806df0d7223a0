"""Build reports/mutation/report.{json,md} from the *before* mutmut results (.mutation/work/*, from
``ci/mutation.sh --baseline REV``), the killer search (``ci/mutation.sh MODULE --which-tests NEW_TESTS``
output saved as WHICH_DIR/which_MODULE.json) and reports/mutation/equivalent.toml.

    python ci/mutation_report.py WHICH_DIR
"""
# ruff: noqa: E501
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'ci'))
import mutation as MU  # noqa: E402

WHICH = Path(sys.argv[1])

mods = MU.load_modules()
equivalent = MU.load_equivalent()
rows, killed_by, judged, open_ = {}, {}, {}, {}
for name, m in mods.items():
    work = ROOT / '.mutation' / 'work' / name
    s = MU.summarize(name, m, work, {})  # before: no equivalence applied yet
    if s is None or s['generated'] - s['not_checked'] == 0:
        continue
    wf = WHICH / f'which_{name}.json'
    which = json.loads(wf.read_text())[name] if wf.is_file() else {}
    surv = s['survivors']
    eq = [x for x in surv if x['mutant'] in equivalent and any(equivalent[x['mutant']]['line'] in ln for ln in MU.added_lines(x['diff']))]
    eqn = {x['mutant'] for x in eq}
    kills = {x['mutant']: which[x['mutant']] for x in surv if which.get(x['mutant'])}
    left = [x for x in surv if x['mutant'] not in eqn and x['mutant'] not in kills]
    checked = s['generated'] - s['not_checked'] - s['skipped']
    det = s['killed'] + s['timeout']
    before = round(100 * det / (checked - len(eq)), 1) if checked - len(eq) else None
    after = round(100 * (det + len(kills)) / (checked - len(eq)), 1) if checked - len(eq) else None
    rows[name] = {
        'path': m['path'], 'tests': m['tests'], 'generated': s['generated'], 'checked': checked,
        'not_run': s['not_checked'], 'complete': s['complete'],
        'before': {'killed': s['killed'], 'timeout': s['timeout'], 'survived': len(surv), 'equivalent': len(eq), 'score': before},
        'after': {'killed': s['killed'] + len(kills), 'timeout': s['timeout'], 'survived': len(left), 'equivalent': len(eq), 'score': after},
    }
    killed_by.update({k: [t for t in v] for k, v in kills.items()})
    judged.update({x['mutant']: equivalent[x['mutant']]['reason'] for x in eq})
    open_[name] = [{'mutant': x['mutant'], 'diff': x['diff']} for x in left]
doc = {'format': 'newllm-mutation-report-1', 'tool': 'mutmut 3.8.1', 'modules': rows,
       'killed_by_new_tests': killed_by, 'equivalent': judged, 'open_survivors': open_}
out = ROOT / 'reports' / 'mutation'
out.mkdir(parents=True, exist_ok=True)
(out / 'report.json').write_text(json.dumps(doc, indent=1) + '\n')
# summary line
print(json.dumps({k: (v['checked'], v['generated'], v['before']['score'], v['after']['score'], v['after']['survived']) for k, v in rows.items()}, indent=0))

# ---- markdown
L = ["# Mutation testing: scores and every survivor's fate", "",
     "Tool: mutmut 3.8.1 through `ci/mutation.sh` ([docs/testing.md#mutation](../../docs/testing.md#mutation)); "
     "modules and their test files: `ci/mutation.toml`. Machine: 2 shared CPU cores (load 10-13 during the runs).", "",
     "**Method.** *Before*: `ci/mutation.sh --baseline 3cbf835 MODULE` — mutmut on the current code with each "
     "module's test files as they were at the fork point of this change (3cbf835; a file new in this change is empty "
     "there), i.e. the suite before issue 16. *After*: every *before* survivor run against the new known-answer "
     "tests with the mutant switched on (`ci/mutation.sh MODULE --which-tests FILES`, mutmut's trampoline via "
     "`MUTANT_UNDER_TEST`): killed when one of them fails (the killing tests are listed below); killed mutants stay "
     "killed (the old tests are unchanged). Equivalent mutants (reasons below and in "
     "[equivalent.toml](equivalent.toml)) are left out of the score. Score = (killed + timed out) / (checked − equivalent).", "",
     "| module | generated | checked | before: killed+timeout / survived | before % | after: survived | equivalent | after % |",
     "|---|---|---|---|---|---|---|---|"]
for name, r in rows.items():
    b, a = r['before'], r['after']
    L.append(f"| {name} | {r['generated']} | {r['checked']}{'' if r['complete'] else ' (partial)'} | "
             f"{b['killed'] + b['timeout']} / {b['survived']} | {b['score']} | {a['survived']} | {a['equivalent']} | {a['score']} |")
tb = {k: sum(r['before'][k] for r in rows.values()) for k in ('killed', 'timeout', 'survived', 'equivalent')}
ta = {k: sum(r['after'][k] for r in rows.values()) for k in ('killed', 'timeout', 'survived', 'equivalent')}
tc = sum(r['checked'] for r in rows.values())
sb = round(100 * (tb['killed'] + tb['timeout']) / (tc - tb['equivalent']), 1)
sa = round(100 * (ta['killed'] + ta['timeout']) / (tc - ta['equivalent']), 1)
doc['total'] = {'checked': tc, 'before_score': sb, 'after_score': sa, 'equivalent': ta['equivalent'],
                'killed_by_new_tests': len(killed_by)}
(out / 'report.json').write_text(json.dumps(doc, indent=1) + '\n')
L.append(f"| **total** | {sum(r['generated'] for r in rows.values())} | {tc} | {tb['killed'] + tb['timeout']} / "
         f"{tb['survived']} | {sb} | {ta['survived']} | {ta['equivalent']} | {sa} |")
L += ["", "Slow tests left out per module (`deselect` in `ci/mutation.toml`): "
      "`tests/test_solver.py::test_float64_and_batch_invariance` (about a minute) for metrics, stop and the solvers; "
      "the three slowest `tests/test_contraction_toolkit.py` tests for contraction.factor; diagnostics runs without "
      "`properties/test_collapse.py` (it trains models)."]
L += ["", "## Survivors killed by the new tests", "", "| mutant | change | killed by |", "|---|---|---|"]
diffs = {}
for name in rows:
    s = MU.summarize(name, mods[name], ROOT / '.mutation' / 'work' / name, {})
    diffs.update({x['mutant']: x['diff'] for x in s['survivors']})
def change(m):
    minus = [ln[1:].strip() for ln in diffs[m].splitlines() if ln.startswith('-') and not ln.startswith('---')]
    plus = [ln[1:].strip() for ln in diffs[m].splitlines() if ln.startswith('+') and not ln.startswith('+++')]
    return f"`{minus[0][:70]}` → `{plus[0][:70]}`".replace('|', '\\|') if minus and plus else '?'
for m, tests in killed_by.items():
    t = tests[0].replace('|', '\\|')
    more = f" (+{len(tests) - 1})" if len(tests) > 1 else ""
    L.append(f"| `{m.replace('newllm.', '')}` | {change(m)} | `{t}`{more} |")
L += ["", "## Survivors judged equivalent", "", "| mutant | change | why no test can kill it |", "|---|---|---|"]
for m, why in judged.items():
    L.append(f"| `{m.replace('newllm.', '')}` | {change(m)} | {why} |")
not_run = [n for n in mods if n not in rows]
partial = [n for n, r in rows.items() if not r['complete']]
L += ["", "## Not (fully) run in this change, and why", "",
      f"Mutating is slow on the shared 2-core machine (0.05-0.3 mutants/s: each survivor reruns every test "
      f"that reaches the function). Partially checked (the mutants mutmut reached before the runs were stopped; "
      f"the score is over those): {', '.join(partial) or 'none'}. Not run yet: {', '.join(not_run)}. "
      "`ci/mutation.sh --budget MINUTES` resumes them; the nightly job runs them all.", "",
      "## A bug found", "",
      "`contraction.factor.x_predict_iterations__mutmut_20` (`clamp_min(0)` -> `clamp_min(1)`) survived because "
      "at a first residual exactly equal to the threshold the mutant answered 2 iterations and the original 1; "
      "the stop rule is strict (`<`), so 2 is right. `predict_iterations` computed `1 + ceil(x)`, off by one "
      "whenever `x = log(threshold / first) / (power log factor)` is an integer (e.g. 1, 0.5, 0.25, 0.125 with "
      "threshold 0.125: 5 iterations, not 4). Fixed to `2 + floor(x)`; "
      "`test_predict_iterations_is_strict_at_exact_powers` pins it."]
left = [(n, x) for n, xs in open_.items() for x in xs]
L += ["", "## Open survivors", ""]
L += [f"- `{x['mutant']}`: {change(x['mutant'])}" for _, x in left] or ["None among the checked mutants."]
(out / 'report.md').write_text("\n".join(L) + "\n")
