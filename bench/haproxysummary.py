#!/usr/bin/env python3
"""Tables for bench/run-haproxy.sh: python3 bench/haproxysummary.py results/haproxy-*.jsonl"""
import json, statistics, sys

rows, drains = {}, []
servers = 3
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith('# - HAProxy servers: '):
        servers = int(line.rsplit(' ', 1)[1])
    if not line or line.startswith('#'):
        continue
    r = json.loads(line)
    if r.get('scenario') == 'sigterm-drain':
        drains.append(r)
    else:
        rows.setdefault((r.get('scenario'), r.get('registry')), []).append(r)

def med(rs, key):
    vals = [r.get(key) for r in rs if not r.get('error') and r.get(key) is not None]
    return statistics.median(vals) if vals else None

def f(v, fmt='%.1f'):
    return '—' if v is None else fmt % v

names = {1: 'replica 1 alone', 2: 'two replicas', 3: 'three replicas'}
print('| row | direct (one replica) | haproxy (%s) | haproxy / direct | p99 direct | p99 haproxy | p99 difference |' % names[servers])
print('|---|---|---|---|---|---|---|')
for sc in sorted({k[0] for k in rows}):
    d, h = rows.get((sc, 'direct'), []), rows.get((sc, 'haproxy'), [])
    metric = (d or h)[0].get('metric', '')
    vd, vh = med(d, 'value'), med(h, 'value')
    pd, ph = med(d, 'p99_ms'), med(h, 'p99_ms')
    fails = sum(1 for r in d + h if r.get('error'))
    ratio = f(vh / vd, '%.2f') if vd and vh else '—'
    diff = f(ph - pd, '%+.2f ms') if pd is not None and ph is not None else '—'
    print('| %s (%s)%s | %s | %s | %s | %s | %s | %s |' % (
        sc, metric, ' **%d failed**' % fails if fails else '', f(vd), f(vh), ratio,
        f(pd, '%.2f ms'), f(ph, '%.2f ms'), diff))
for r in drains:
    h = r.get('haproxy', {})
    print()
    print('SIGTERM drain (16 clients, manifest HEAD through haproxy, replica 2 stopped): '
          'client saw %s; %s requests, p99 %s ms; replica exited %.2f s after SIGTERM; '
          'haproxy: %d answers 5xx, %d connection errors, %d response errors, %d retries, %d redispatches; servers %s' % (
              'no failure' if r.get('client_ok') else 'a FAILURE: ' + r.get('client_error', ''),
              r.get('requests'), r.get('p99_ms'), r.get('replica_exit_s', 0),
              h.get('hrsp_5xx', 0), h.get('econ', 0), h.get('eresp', 0), h.get('wretr', 0), h.get('wredis', 0),
              ', '.join('%s %s' % (k[7:], v) for k, v in sorted(h.items()) if k.startswith('status_'))))
