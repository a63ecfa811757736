#!/usr/bin/env python3
"""Tables for bench/run-s3.sh: python3 bench/s3summary.py results/s3-*.jsonl"""
import json, statistics, sys

res, counts = {}, {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line or line.startswith('#'):
        continue
    r = json.loads(line)
    if r.get('scenario') == 's3-ops':
        if 'extra' in r:
            counts[r['registry']] = r['extra']
        continue
    sc = r.get('scenario', '').removeprefix('raw-')
    res.setdefault((sc, r.get('registry')), []).append(r)

def cell(sc, sysname):
    rs = res.get((sc, sysname), [])
    ok = [r for r in rs if not r.get('error')]
    if not rs:
        return None
    if len(ok) < len(rs):
        return {'fail': True, 'n': len(rs)}
    vals = [r['value'] for r in sorted(ok, key=lambda r: r.get('rep', 0))]
    return {'med': statistics.median(vals), 'vals': vals,
            'p99': statistics.median(r.get('p99_ms', 0) for r in ok),
            'p50': statistics.median(r.get('p50_ms', 0) for r in ok),
            'busy': [(r.get('rep'), r.get('background_busy_pct'), r.get('other_cpu_pct')) for r in ok]}

def fmt(c, digits=1):
    if c is None:
        return '—'
    if c.get('fail'):
        return 'FAIL'
    f = '%.0f' if c['med'] >= 1000 else '%.' + str(digits) + 'f'
    return '**' + (f % c['med']) + '** (' + ', '.join(f % v for v in c['vals']) + ')'

def ratio(a, b):
    if not a or not b or a.get('fail') or b.get('fail') or not b['med']:
        return None
    return a['med'] / b['med']

def rs(x):
    return '—' if x is None else '%.2f×' % x

def verdict(x, t):
    if x is None:
        return '—'
    return 'yes' if x >= t else '**NO**'

names = {'push-16m': 'Blob push, 16 MiB × 4 parallel (64 blobs)',
         'push-256k': 'Blob push, 256 KiB × 8 parallel (1024 blobs)',
         'pull-16m': 'Blob pull, 16 MiB × 4 parallel (64 blobs)',
         'pull-256k': 'Blob pull, 256 KiB × 8 parallel (1024 blobs)',
         'manifest-head': 'Manifest HEAD by tag, 16 clients',
         'manifest-get': 'Manifest GET by tag, 16 clients'}

# The floor (bench/floor, push rows only): columns only when it ran.
floors = [s for s in ('floor', 'floor-nohash') if any(k[1] == s for k in res)]
floor_names = {'floor': 'Floor (hash + hold + 1 PUT)', 'floor-nohash': 'Floor, no hash'}

def floor_cell(sc, sysname, rc):
    if not sc.startswith('push'):
        return 'n/a'
    c = cell(sc, sysname)
    if c is None or c.get('fail'):
        return fmt(c)
    return '%s = %s raw' % (fmt(c), rs(ratio(c, rc)))

print('| Row | Unit | raw minio-go: median (runs) | Stock v3.1.2 on S3 | Slipway on S3 | Slipway/raw (target) | Slipway/stock (target ≥ 1.0) |'
      + ''.join(' %s: median (runs) = ×raw |' % floor_names[f] for f in floors))
print('| --- | --- | ---: | ---: | ---: | ---: | ---: |' + ' ---: |' * len(floors))
rows = []
for sc, raw_t in (('push-16m', 0.8), ('push-256k', 0.5)):
    rows.append((names[sc], 'MiB/s', sc, 'raw', 'stock', 'slipway', raw_t, 1.0))
for sc in ('pull-16m', 'pull-256k'):
    rows.append((names[sc] + ', redirect on', 'MiB/s', sc, 'raw', 'stock', 'slipway', 0.9, 1.0))
    rows.append((names[sc] + ', redirect off', 'MiB/s', sc, 'raw', 'stock-noredir', 'slipway-noredir', None, 1.0))
for sc in ('manifest-head', 'manifest-get'):
    rows.append((names[sc], 'req/s', sc, None, 'stock', 'slipway', None, 5.0))
lat = []
for name, unit, sc, rawk, stk, slk, raw_t, st_t in rows:
    if not any(k[0] == sc for k in res):
        continue
    rc = cell(sc, rawk) if rawk else None
    tc, sc_ = cell(sc, stk), cell(sc, slk)
    r1, r2 = ratio(sc_, rc), ratio(sc_, tc)
    r1s = rs(r1) + (' (≥ %.1f: %s)' % (raw_t, verdict(r1, raw_t)) if raw_t else '')
    r2s = rs(r2) + (' (≥ %.1f: %s)' % (st_t, verdict(r2, st_t)) if st_t != 1.0 else ' ' + verdict(r2, 1.0))
    print('| %s | %s | %s | %s | %s | %s | %s |' % (name, unit, fmt(rc) if rawk else 'n/a', fmt(tc), fmt(sc_), r1s if rawk else 'n/a', r2s)
          + ''.join(' %s |' % floor_cell(sc, f, rc) for f in floors))
    lat.append((name, rc, tc, sc_, sc))
print()
print('Per-request latency, median over runs of each run\'s p50 / p99 (ms):')
print()
print('| Row | raw p50 | raw p99 | Stock p50 | Stock p99 | Slipway p50 | Slipway p99 |')
print('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
for name, rc, tc, sc_, sc in lat:
    f = lambda c, k: '—' if not c or c.get('fail') else '%.2f' % c[k]
    extra = ''
    if sc.startswith('manifest') and sc_ and not sc_.get('fail'):
        extra = ' (p99 ≤ 10 ms: %s)' % ('yes' if sc_['p99'] <= 10 else '**NO**')
    print('| %s | %s | %s | %s | %s | %s | %s%s |' % (name, f(rc, 'p50'), f(rc, 'p99'), f(tc, 'p50'), f(tc, 'p99'), f(sc_, 'p50'), f(sc_, 'p99'), extra))

def per_gib(sc, sysname, key):
    ok = [r for r in res.get((sc, sysname), []) if not r.get('error') and r.get(key) is not None and r.get('bytes')]
    if not ok:
        return None
    return statistics.median(r[key] / (r['bytes'] / 2**30) for r in ok)

cpu_rows = [sc for sc in ('push-16m', 'push-256k', 'pull-16m', 'pull-256k') if any(k[0] == sc for k in res)]
if any(per_gib(sc, s, 'server_cpu_s') is not None for sc in cpu_rows for s in ('slipway', 'stock')):
    print()
    print('Server CPU per GiB moved (user+system CPU-seconds of the registry process during the timed run, median over runs; MinIO\'s beside it; raw: MinIO only), and what Slipway\'s Go runtime allocated per MiB:')
    print()
    print('| Row | raw: MinIO s/GiB | Stock s/GiB (+ MinIO) | Slipway s/GiB (+ MinIO) | Slipway/stock (target ≤ 0.5 for push) | Slipway allocs per MiB |'
          + ''.join(' %s s/GiB (+ MinIO) |' % floor_names[fl] for fl in floors))
    print('| --- | ---: | ---: | ---: | ---: | ---: |' + ' ---: |' * len(floors))
    for sc in cpu_rows:
        f = lambda v: '—' if v is None else '%.2f' % v
        st, sl = per_gib(sc, 'stock', 'server_cpu_s'), per_gib(sc, 'slipway', 'server_cpu_s')
        stm, slm = per_gib(sc, 'stock', 'also_cpu_s'), per_gib(sc, 'slipway', 'also_cpu_s')
        rawm = per_gib(sc, 'raw', 'server_cpu_s')
        r = sl / st if sl is not None and st else None
        tgt = ''
        if r is not None and sc.startswith('push'):
            tgt = ' (%s)' % ('yes' if r <= 0.5 else '**NO**')
        ab, am = per_gib(sc, 'slipway', 'server_alloc_bytes'), per_gib(sc, 'slipway', 'server_mallocs')
        allocs = '—' if ab is None else '%.2f MiB in %.0f objects' % (ab / 1024 / 2**20, am / 1024)
        fcells = ''.join(' %s (+ %s) |' % (f(per_gib(sc, fl, 'server_cpu_s')), f(per_gib(sc, fl, 'also_cpu_s')))
                         if sc.startswith('push') else ' n/a |' for fl in floors)
        print('| %s | %s | %s (+ %s) | %s (+ %s) | %s%s | %s |' % (names[sc], f(rawm), f(st), f(stm), f(sl), f(slm), rs(r), tgt, allocs) + fcells)

busy = []
for (sc, sysname), rs_ in sorted(res.items()):
    for r in rs_:
        b, o = r.get('background_busy_pct', -1), r.get('other_cpu_pct') or 0
        if b > 10 or o > 10:
            busy.append('%s %s rep %s (%s%% before, %.0f%% during: %s)' % (sysname, sc, r.get('rep'), b, o, ', '.join((r.get('other_top') or [])[:3])))
if busy:
    print()
    print('Runs where other processes used more than 10% of the CPUs just before or during the timed part: ' + '; '.join(busy) + '.')

if counts:
    print()
    print('S3 requests per operation (counted by bench/s3count between the registry and MinIO; one docker-style operation each; "presigned" = the client\'s GET after a redirect):')
    print()
    steps = [('blob_push', 'push one 16 MiB blob (POST, PATCH, PUT)'),
             ('blob_pull', 'pull it (GET, redirect followed)'),
             ('blob_pull_again', 'pull it again'),
             ('image_push_config_and_manifest', 'HEAD layer, push config, PUT manifest'),
             ('manifest_get_first', 'first manifest GET by tag'),
             ('manifest_get_next_10', 'next 10 manifest GETs by tag'),
             ('manifest_head_next_10', '10 manifest HEADs by tag')]
    systems = [s for s in ('slipway', 'stock', 'slipway-noredir', 'stock-noredir') if s in counts]
    print('| Operation | ' + ' | '.join(systems) + ' |')
    print('| --- |' + ' ---: |' * len(systems))
    for k, label in steps:
        cells = []
        for s in systems:
            v = counts[s].get(k)
            if not v:
                cells.append('—'); continue
            kinds = ', '.join('%s %d' % (kk, n) for kk, n in sorted(v['counts'].items()))
            cells.append('**%d** (%s)' % (v['total'], kinds))
        print('| %s | %s |' % (label, ' | '.join(cells)))
    cells = []
    for s in systems:
        t = counts[s].get('blob_push', {}).get('total', 0) + counts[s].get('blob_pull', {}).get('total', 0)
        cells.append('**%d** (≤ 12: %s)' % (t, 'yes' if t <= 12 else '**NO**'))
    print('| blob push + pull | %s |' % ' | '.join(cells))
