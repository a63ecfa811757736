#!/usr/bin/env python3
"""Tables for bench/run-import.sh: python3 bench/importsummary.py results/import-*.jsonl

Per case (same bucket, other bucket): the median wall time of copying every
tag through both registries' APIs (crane copy) and of `slipway import`, their
ratio (targets: same bucket >= 50x, other bucket >= 5x), and the S3 requests
the import sent (counted by bench/s3count: its reads of the stock layout and
its writes into Slipway) per blob it imported (its JSON summary's
blobs.imported; else the population's layers and configs), by kind.
"""
import json, statistics, sys

lines = []
for line in open(sys.argv[1]):
    line = line.strip()
    if line and not line.startswith('#'):
        lines.append(json.loads(line))

CASES = {'same': 'same bucket', 'other': 'other bucket'}
TARGET = {'same': 50, 'other': 5}
KINDS = ('PUT copy', 'PUT part-copy', 'PUT part', 'PUT object', 'GET object')


def runs(scenario, case):
    return [r for r in lines if r.get('scenario') == scenario and r.get('case') == case]


def ok(rs):
    return [r for r in rs if not r.get('error')]


def spread(rs):
    vs = sorted(r['seconds'] for r in ok(rs))
    if not vs:
        return None, '—'
    m = statistics.median(vs)
    txt = '%.2f s' % m
    if len(vs) > 1:
        txt += ' (%.2f–%.2f)' % (vs[0], vs[-1])
    failed = len(rs) - len(vs)
    return m, txt + (' (+%d failed)' % failed if failed else '')


def modes(rs):
    """How the bytes went in the imports rs (their summaries' bytes per mode)."""
    seen = set()
    for r in rs:
        try:
            seen |= {k for k, v in r['extra']['summary']['bytes'].items() if v}
        except (KeyError, TypeError, AttributeError):
            pass
    return ' (%s)' % ', '.join(sorted(seen)) if seen else ''


def imported(r):
    try:
        return int(r['extra']['summary']['blobs']['imported'])
    except (KeyError, TypeError, ValueError):
        return 0


pop = next((r for r in lines if r.get('scenario') == 'populate'), None)
blobs = pop['extra']['blobs'] if pop else 0
if pop:
    e = pop['extra']
    print('Stock registry content: %d repositories, %d tags, %d blobs (layers and configs), %d manifests, %.1f MiB '
          '(pushed through its API in %.0f s).' % (e['repos'], e['tags'], e['blobs'], e['manifests'], e['bytes'] / 1048576, pop['seconds']))
    print()

print('| Case | API copy (`crane copy`) | `slipway import` | API / import | target | S3 requests per imported blob | of which (median run) |')
print('|---|---|---|---|---|---|---|')
for case, name in CASES.items():
    api, imp = runs('api-copy', case), runs('import', case)
    if not api and not imp:
        continue
    ma, ta = spread(api)
    mi, ti = spread(imp)
    ratio = '%.1f×' % (ma / mi) if ma and mi else '—'
    met = '—' if not (ma and mi) else ('yes' if ma / mi >= TARGET[case] else '**NO**')
    per, kinds = '—', '—'
    good = sorted(ok(imp), key=lambda r: r['seconds'])
    if good:
        r = good[len(good) // 2]
        n = imported(r) or blobs
        per = '%.2f (%d requests, %d blobs)' % (r['extra']['s3']['total'] / n, r['extra']['s3']['total'], n) if n else '—'
        counts = r['extra']['s3']['counts']
        kinds = ', '.join('%s %d' % (k, counts.get(k, 0)) for k in KINDS)
    print('| %s%s | %s | %s | %s | ≥ %d×: %s | %s | %s |' % (name, modes(good), ta, ti, ratio, TARGET[case], met, per, kinds))
print()
if pop and pop['extra']['bytes'] < 100 << 20:
    print('(A smoke run: with %.1f MiB, process start-up dominates both times; the ratios say nothing about the targets.)' % (
        pop['extra']['bytes'] / 1048576))
    print()

for case, name in CASES.items():
    good = sorted(ok(runs('import', case)), key=lambda r: r['seconds'])
    if not good:
        continue
    r = good[len(good) // 2]
    counts = r['extra']['s3']['counts']
    print('Import, %s, S3 requests by kind (median run, %d in all): %s; CPU %.1f s user + %.1f s system, peak RSS %.0f MiB.' % (
        name, r['extra']['s3']['total'], ', '.join('%s %d' % kv for kv in sorted(counts.items(), key=lambda kv: -kv[1])),
        r['extra']['user_s'], r['extra']['sys_s'], r['extra']['peak_rss_kib'] / 1024))
    s = json.dumps(r['extra'].get('summary'), separators=(',', ':'))
    print('Its summary: `%s`' % (s if len(s) <= 600 else s[:600] + '…'))
    print()

for v in (r for r in lines if r.get('scenario') == 'import-verify'):
    e = v['extra']
    print('Verified (%s): %d tags at the stock digest (%d wrong), %d layers read back and rehashed (%d wrong).' % (
        CASES.get(v['case'], v['case']), e['tags'], e['tags_wrong'], e['layers'], e['layers_wrong']))
listing = {r['extra']['when']: r for r in lines if r.get('scenario') == 'stock-listing'}
if 'before' in listing and 'after' in listing:
    b, a = listing['before'], listing['after']
    same = b['value'] == a['value'] and b['extra']['sha256'] == a['extra']['sha256']
    print('Stock layout (key, size, ETag of every object under docker/): %d objects before, %d after: %s.' % (
        b['value'], a['value'], 'unchanged' if same else '**CHANGED**'))
fails = [r for r in lines if r.get('error')]
if fails:
    print()
    print('**%d failed runs**: %s' % (len(fails), '; '.join('%s %s rep %s: %s' % (r.get('scenario'), r.get('case', ''), r.get('rep', ''), r['error']) for r in fails)))
