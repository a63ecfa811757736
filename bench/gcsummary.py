#!/usr/bin/env python3
"""Tables for bench/run-gc.sh: python3 bench/gcsummary.py results/gc-*.jsonl

Freed = bucket listed before the collection minus after it, per class of
object (regbench gc-bucket). "Blob data" is the bytes of layers and configs:
Slipway's data/ objects, the stock registry's blobs/sha256/<hh>/<hex>/data
objects whose digest is not one of the pushed manifests (its manifests are
blob data objects too; they are counted as manifests). The expected figure
is what gc-populate pushed for the untagged images: their configs and own
layers (not the shared layer, which kept tags still need).
"""
import json, statistics, sys

lines = []
for line in open(sys.argv[1]):
    line = line.strip()
    if line and not line.startswith('#'):
        lines.append(json.loads(line))


def one(scenario, registry):
    rs = [r for r in lines if r.get('scenario') == scenario and r.get('registry') == registry]
    return rs[-1] if rs else None


SYSTEMS = [s for s in ('stock', 'slipway') if one('gc-populate', s) or one('gc-collect', s)]
NAMES = {'stock': 'Stock v3.1.2, offline `garbage-collect --delete-untagged`',
         'slipway': 'Slipway, online `slipway gc` (grace 0s)'}


def mib(b):
    return '%.2f MiB' % (b / 1048576)


def counts(c):
    return '%s (%d objects)' % (mib(c['bytes']), c['objects']) if c else '—'


def freed(sys_, cls=None):
    b, a = one('gc-bucket', sys_ + ':before'), one('gc-bucket', sys_ + ':after')
    if not b or not a or b.get('error') or a.get('error'):
        return None
    if cls is None:
        return {'objects': b['ops'] - a['ops'], 'bytes': int(b['value'] - a['value'])}
    cb = b['extra']['classes'].get(cls, {'objects': 0, 'bytes': 0})
    ca = a['extra']['classes'].get(cls, {'objects': 0, 'bytes': 0})
    return {'objects': cb['objects'] - ca['objects'], 'bytes': cb['bytes'] - ca['bytes']}


def cell(sys_, f):
    try:
        v = f(sys_)
    except (KeyError, TypeError):
        v = None
    return '—' if v is None else v


def runs(sys_):
    return sorted((r for r in lines if r.get('scenario') == 'gc-collect' and r.get('registry') == sys_),
                  key=lambda r: r.get('rep', 0))


def collect(sys_):
    """The collection of sys_: its runs (Slipway: 2 when the first had to
    leave descriptors for BlobLinkTTL) summed, peak RSS the largest."""
    rs = runs(sys_)
    if not rs or any(r.get('error') for r in rs):
        return None
    kinds = {}
    for r in rs:
        for k, n in r['extra']['s3']['counts'].items():
            kinds[k] = kinds.get(k, 0) + n
    return {'value': sum(r['value'] for r in rs), 'extra': {
        's3': {'total': sum(r['extra']['s3']['total'] for r in rs), 'counts': kinds},
        'user_s': sum(r['extra']['user_s'] for r in rs), 'sys_s': sum(r['extra']['sys_s'] for r in rs),
        'peak_rss_kib': max(r['extra']['peak_rss_kib'] for r in rs)}}


def freed_between(sys_, a, b, cls):
    ba, bb = one('gc-bucket', sys_ + ':' + a), one('gc-bucket', sys_ + ':' + b)
    if not ba or not bb or ba.get('error') or bb.get('error'):
        return None
    ca = ba['extra']['classes'].get(cls, {'objects': 0, 'bytes': 0})
    cb = bb['extra']['classes'].get(cls, {'objects': 0, 'bytes': 0})
    return {'objects': ca['objects'] - cb['objects'], 'bytes': ca['bytes'] - cb['bytes']}


# --- populate ---------------------------------------------------------------------------------
pops = [(s, one('gc-populate', s)) for s in SYSTEMS]
if any(p for _, p in pops):
    p = next(p for _, p in pops if p and not p.get('error'))
    e = p['extra'] if p else {}
    print('Content (gc-populate): %s repositories × %s tags × %s layers (2–8 KiB, layer 0 shared by the '
          "repository's tags), %s tags deleted through the API; expected to free: blob data %s, manifests %s."
          % (e.get('repos'), e.get('tags'), e.get('layers'), e.get('tags_deleted'),
             counts(e.get('expected_freed_blob_data')), counts(e.get('expected_freed_manifests'))))
    print()
    print('| Populate (untimed for the rows) | ' + ' | '.join(NAMES[s] for s in SYSTEMS) + ' |')
    print('| --- |' + ' ---: |' * len(SYSTEMS))
    print('| Images pushed per second | ' + ' | '.join(
        'FAIL' if not p or p.get('error') else '%.1f' % p['value'] for _, p in pops) + ' |')
    print('| Tag deletes (DELETE /v2/…/manifests/<tag>) | ' + ' | '.join(
        '—' if not p or p.get('error') else '%d in %.1f s' % (p['extra']['tags_deleted'], p['extra']['delete_seconds'])
        for _, p in pops) + ' |')
    print()

# --- one collection ---------------------------------------------------------------------------
if SYSTEMS:
    def top(s3):
        kinds = sorted(s3['counts'].items(), key=lambda kv: -kv[1])
        return ', '.join('%s %d' % kv for kv in kinds[:4])

    def ratio_row(label, f, fmt, better, target=None, invert=False):
        vals = {s: cell(s, f) for s in SYSTEMS}
        cells = [fmt(vals[s]) if vals[s] != '—' else '—' for s in SYSTEMS]
        r = '—'
        if len(SYSTEMS) == 2 and '—' not in vals.values() and vals['slipway'] and vals['stock']:
            x = vals['stock'] / vals['slipway'] if invert else vals['slipway'] / vals['stock']
            r = '%.2f×' % x
            if target is not None:
                r += ' (≥ %g: %s)' % (target, 'yes' if x >= target else '**NO**')
        print('| %s | %s | %s |' % (label, ' | '.join(cells), r))

    print('| One full collection | ' + ' | '.join(NAMES[s] for s in SYSTEMS) + ' | Slipway vs stock |')
    print('| --- |' + ' ---: |' * len(SYSTEMS) + ' ---: |')
    def runs_cell(s):
        rs = runs(s)
        if not rs:
            return '—'
        if len(rs) == 1:
            return '1 run'
        return '%d runs: %s s, the second after a BlobLinkTTL wait (not counted)' % (
            len(rs), ' + '.join('%.2f' % r['value'] for r in rs))
    print('| Runs (times summed below) | %s | |' % ' | '.join(runs_cell(s) for s in SYSTEMS))
    ratio_row('Wall time (s)', lambda s: collect(s)['value'], lambda v: '**%.2f**' % v, False, 5, invert=True)
    ratio_row('S3 requests issued', lambda s: collect(s)['extra']['s3']['total'], lambda v: '%d' % v, False, invert=True)
    print('| S3 requests by kind (top 4) | ' + ' | '.join(
        str(cell(s, lambda s: top(collect(s)['extra']['s3']))) for s in SYSTEMS) + ' | |')
    ratio_row('CPU of the collector process (user + sys, s)',
              lambda s: collect(s)['extra']['user_s'] + collect(s)['extra']['sys_s'], lambda v: '%.2f' % v, False, invert=True)
    ratio_row('Peak RSS of the collector process (MiB)', lambda s: collect(s)['extra']['peak_rss_kib'] / 1024,
              lambda v: '%.1f' % v, False, invert=True)

    def blob_row():
        vals = {s: freed(s, 'blob_data') for s in SYSTEMS}
        cells = [counts(vals[s]) for s in SYSTEMS]
        r = '—'
        if len(SYSTEMS) == 2 and vals['slipway'] and vals['stock'] and vals['stock']['bytes']:
            d = (vals['slipway']['bytes'] - vals['stock']['bytes']) / vals['stock']['bytes'] * 100
            r = '%+.2f %% (±1 %%: %s)' % (d, 'yes' if abs(d) <= 1 else '**NO**')
        print('| **Blob data freed** (layers + configs) | %s | %s |' % (' | '.join(cells), r))
    blob_row()
    if any(one('gc-bucket', s + ':between') for s in SYSTEMS):
        print('| Blob data freed by the first run alone | %s | |' % ' | '.join(
            counts(freed_between(s, 'before', 'between', 'blob_data')) if one('gc-bucket', s + ':between') else '—'
            for s in SYSTEMS))
    for label, cls in (('Manifests freed', 'manifest'), ('Descriptors freed (Slipway blobs/)', 'descriptor'),
                       ('Repository links/tags freed', 'repository'), ('gc/ bookkeeping (negative: added)', 'gc'),
                       ('Other', 'other')):
        print('| %s | %s | |' % (label, ' | '.join(counts(freed(s, cls)) for s in SYSTEMS)))
    print('| All objects freed | %s | |' % ' | '.join(counts(freed(s)) for s in SYSTEMS))

    def bucket_line(s):
        b, a = one('gc-bucket', s + ':before'), one('gc-bucket', s + ':after')
        if not b or not a or b.get('error') or a.get('error'):
            return '—'
        return '%d → %d objects, %s → %s' % (b['ops'], a['ops'], mib(b['value']), mib(a['value']))
    print('| Bucket before → after | %s | |' % ' | '.join(bucket_line(s) for s in SYSTEMS))

    def verify(s):
        v = one('gc-verify', s)
        if not v:
            return '—'
        if v.get('error'):
            return '**FAIL**: ' + v['error'][:200].replace('|', '/')
        e = v['extra']
        return ('%d kept tags pull; %d deleted tags 404; left of the deleted images: %d manifests, %d blobs'
                % (e['kept_tags_ok'], e['deleted_tags_404'], e['deleted_manifests_still_there'], e['deleted_blobs_still_there']))
    print('| After: gc-verify | %s | |' % ' | '.join(verify(s) for s in SYSTEMS))
    for s in SYSTEMS:
        for r in runs(s):
            if r.get('error'):
                print()
                print('%s collection run %s FAILED (%s): %s' % (s, r.get('rep'), r['error'], r['extra'].get('output_tail', '').replace('\n', ' / ')))
    print()

# --- pushes during a collection -----------------------------------------------------------------
MODES = (('slipway', 'Without a collection'),
         ('slipway+gc', '`slipway gc` in a loop meanwhile (gc.concurrency)'),
         ('slipway+gentlegc', '`slipway gc --gentle` in a loop meanwhile (gc.busy_concurrency, gc.busy_share)'),
         ('slipway+servergc', "the server's own collections meanwhile (gc.busy_concurrency while it has clients)"))
pushes = {m: [r for r in lines if r.get('scenario') == 'gc-push' and r.get('registry') == m and not r.get('error')]
          for m, _ in MODES}
if any(pushes.values()):
    print('| Slipway pushes (fresh repository, 4 KiB layer + config + manifest) | images/s: median (runs) | p50 / p99 ms | with / without (≥ 0.8) | collections completed meanwhile |')
    print('| --- | ---: | ---: | ---: | --- |')
    med = {}
    for m, label in MODES:
        rs = pushes[m]
        loops = [r for r in lines if r.get('scenario') == 'gc-loop' and r.get('registry') == m]
        if not rs:
            if m == 'slipway' or loops:
                print('| %s | FAIL or not run | | | |' % label)
            continue
        med[m] = statistics.median(r['value'] for r in rs)
        ratio, done = '', ''
        if m != 'slipway' and 'slipway' in med:
            x = med[m] / med['slipway']
            if any(r['extra']['failed'] for r in loops):
                ratio = '%.2f× (not valid: collections failed)' % x
            else:
                ratio = '**%.2f×** (%s)' % (x, 'yes' if x >= 0.8 else '**NO**')
            done = ', '.join('%d (%d failed)' % (r['extra']['completed'], r['extra']['failed']) for r in loops)
        print('| %s | **%.1f** (%s) | %.1f / %.1f | %s | %s |' % (label, med[m], ', '.join('%.1f' % r['value'] for r in rs),
                                                            statistics.median(r['p50_ms'] for r in rs),
                                                            statistics.median(r['p99_ms'] for r in rs), ratio, done))
