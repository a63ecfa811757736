#!/usr/bin/env python3
"""Tables for bench/run-promote.sh: python3 bench/promotesummary.py bench/results/promote-*.jsonl

Latencies are pooled over every run of a row (REPS × ITERS timed
iterations); p50/p99 are nearest-rank quantiles of the pool; in
parentheses, each run's own p50."""
import json, sys

ROWS = [('promote-1m-warm', '1 MiB, warm target (same repository, new tag)'),
        ('promote-1m-cold', '1 MiB, cold target (new repository)'),
        ('promote-1g-warm', '1 GiB, warm target (same repository, new tag)'),
        ('promote-1g-cold', '1 GiB, cold target (new repository)')]
KINDS = ['promote', 'crane', 'crane-lib', 'crane-digest']

runs, counts, failed = {}, {}, []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line or line.startswith('#'):
        continue
    r = json.loads(line)
    if r.get('error'):
        failed.append(r)
        continue
    if r.get('metric') == 'S3 requests':
        counts[r['scenario']] = r['extra']['counts']
        continue
    runs.setdefault(r['scenario'], []).append(r)


def q(v, p):
    if not v:
        return float('nan')
    s = sorted(v)
    return s[int(p * (len(s) - 1) + 0.5)]


def pooled(sc, kind):
    return [x for r in runs.get(sc, []) for x in r['extra']['ms'].get(kind, [])]


def per_run_p50(sc, kind):
    return [q(r['extra']['ms'].get(kind, []), 0.5) for r in sorted(runs.get(sc, []), key=lambda r: r.get('rep', 0))]


def f(x):
    return '%.1f' % x


out = []
if runs:
    n_runs = max(len(v) for v in runs.values())
    iters = sorted({r['extra']['iterations'] for v in runs.values() for r in v})
    out.append('Latency in ms, pooled over %d run(s) × %s timed iterations per row; in parentheses each run\'s p50. '
               'crane/Slipway is the ratio of the p50s (> 1.0×: Slipway faster).' % (n_runs, '/'.join(map(str, iters))))
    out.append('')
    out.append('| Row | Slipway promotion p50 (runs) | p99 | `crane copy` process p50 (runs) | p99 | crane/Slipway | crane.Copy in-process p50 | p99 | crane.Copy/Slipway | `crane digest` process p50 | Slipway faster than crane copy |')
    out.append('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |')
    p50 = {}
    for sc, label in ROWS:
        if sc not in runs:
            continue
        s, c, l, d = (pooled(sc, k) for k in KINDS)
        p50[sc] = q(s, 0.5)
        rs = ', '.join(f(x) for x in per_run_p50(sc, 'promote'))
        rc = ', '.join(f(x) for x in per_run_p50(sc, 'crane'))
        out.append('| %s | **%s** (%s) | %s | **%s** (%s) | %s | %.2f× | %s | %s | %.2f× | %s | %s |' % (
            label, f(q(s, .5)), rs, f(q(s, .99)), f(q(c, .5)), rc, f(q(c, .99)), q(c, .5) / q(s, .5),
            f(q(l, .5)), f(q(l, .99)), q(l, .5) / q(s, .5), f(q(d, .5)),
            'yes' if q(c, .5) > q(s, .5) else '**NO**'))
    out.append('')
    for mode in ('warm', 'cold'):
        a, b = p50.get('promote-1g-' + mode), p50.get('promote-1m-' + mode)
        if a and b:
            out.append('- Promotion p50, 1 GiB / 1 MiB, %s target: %s / %s ms = **%.2f×** (target ≤ 1.5: %s)' % (
                mode, f(a), f(b), a / b, 'met' if a / b <= 1.5 else '**NOT met**'))
    cpu = [x for sc in runs for r in runs[sc] for x in r['extra'].get('process_cpu_ms', {}).get('crane', [])]
    dcpu = [x for sc in runs for r in runs[sc] for x in r['extra'].get('process_cpu_ms', {}).get('crane-digest', [])]
    if cpu:
        out.append('- CPU time of one `crane copy` process (user+sys), p50 over all rows: %s ms; of one `crane digest`: %s ms' % (f(q(cpu, .5)), f(q(dcpu, .5))))
    busy = [(sc, r.get('rep'), r.get('background_busy_pct')) for sc in runs for r in runs[sc]
            if (r.get('background_busy_pct') or 0) > 10]
    if busy:
        out.append('- Runs that started on a busy machine (> 10 %% CPU): %s' % ', '.join('%s rep %s (%s%%)' % b for b in busy))
    else:
        out.append('- Every run started on a quiet machine (other processes ≤ 10 % of the CPUs)')
if counts:
    out.append('')
    out.append('S3 requests caused by one operation (bench/s3count between a second Slipway and MinIO; warm rows after one untimed round):')
    out.append('')
    out.append('| Row | promotion | `crane copy` | crane.Copy in-process | `crane digest` |')
    out.append('| --- | ---: | ---: | ---: | ---: |')
    for sc, label in ROWS:
        if sc not in counts:
            continue
        cells = []
        for k in KINDS:
            v = counts[sc].get(k, {})
            kinds = ', '.join('%s %d' % (n, m) for n, m in sorted(v.get('counts', {}).items()))
            cells.append('**%d** (%s)' % (v.get('total', 0), kinds))
        out.append('| %s | %s |' % (label, ' | '.join(cells)))
if failed:
    out.append('')
    out.append('FAILED:')
    for r in failed:
        out.append('- %s rep %s (%s): %s' % (r.get('scenario'), r.get('rep'), r.get('phase'), r.get('error', '')[:500]))
print('\n'.join(out))
