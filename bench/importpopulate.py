#!/usr/bin/env python3
"""Fill a registry through its /v2/ API for bench/run-import.sh.

python3 bench/importpopulate.py URL STATE REPOS TAGS LAYERS LAYER_KB WORKERS SEED

Pushes REPOS repositories (bench/app-000, ...) x TAGS tags (v0, v1, ...) x
LAYERS layers of random bytes (LAYER_KB KiB on average, 50 % to 150 %; every
layer its own content) plus a config per tag, as OCI image manifests, WORKERS
repositories at a time; blobs go monolithically (POST, then PUT ?digest=).
The same SEED gives the same bytes and digests. Layers are not tarballs:
crane copy and slipway import move blobs without opening them.

STATE gets JSON: {"repos": n, "tags": [[repo, tag, manifest digest]...],
"blobs": distinct blobs, "manifests": n, "bytes": blob bytes pushed}.
"""
import concurrent.futures, hashlib, http.client, json, random, sys, urllib.parse

OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'


def main():
    url, state = sys.argv[1], sys.argv[2]
    repos, tags, layers, layer_kb, workers, seed = map(int, sys.argv[3:9])
    u = urllib.parse.urlsplit(url)

    def push_repo(i):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        name = 'bench/app-%03d' % i
        out, nbytes, nblobs = [], 0, 0
        for j in range(tags):
            rnd = random.Random('%d/%d/%d' % (seed, i, j))
            descs = []
            for _ in range(layers):
                data = rnd.randbytes(int(layer_kb * 1024 * (0.5 + rnd.random())))
                descs.append(push_blob(conn, name, data, 'application/vnd.oci.image.layer.v1.tar+gzip'))
                nbytes += len(data)
            config = json.dumps({'architecture': 'amd64', 'os': 'linux', 'config': {'Labels': {'bench': '%s:v%d' % (name, j)}},
                                 'rootfs': {'type': 'layers', 'diff_ids': [d['digest'] for d in descs]}}).encode()
            cdesc = push_blob(conn, name, config, 'application/vnd.oci.image.config.v1+json')
            nbytes += len(config)
            nblobs += layers + 1
            manifest = json.dumps({'schemaVersion': 2, 'mediaType': OCI_MANIFEST, 'config': cdesc, 'layers': descs}).encode()
            tag = 'v%d' % j
            request(conn, 'PUT', '/v2/%s/manifests/%s' % (name, tag), manifest, {'Content-Type': OCI_MANIFEST}, 201)
            out.append([name, tag, 'sha256:' + hashlib.sha256(manifest).hexdigest()])
        conn.close()
        return out, nbytes, nblobs

    result = {'repos': repos, 'tags': [], 'blobs': 0, 'manifests': repos * tags, 'bytes': 0}
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        for out, nbytes, nblobs in ex.map(push_repo, range(repos)):
            result['tags'] += out
            result['bytes'] += nbytes
            result['blobs'] += nblobs
    with open(state, 'w') as f:
        json.dump(result, f)
    print('%d repositories, %d tags, %d blobs, %.1f MiB' % (repos, len(result['tags']), result['blobs'], result['bytes'] / 1048576))


def request(conn, method, path, body, headers, want):
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != want:
        raise SystemExit('%s %s: %d %s' % (method, path, resp.status, data[:300]))
    return resp


def push_blob(conn, name, data, media_type):
    digest = 'sha256:' + hashlib.sha256(data).hexdigest()
    resp = request(conn, 'POST', '/v2/%s/blobs/uploads/' % name, b'', {'Content-Length': '0'}, 202)
    loc = urllib.parse.urlsplit(resp.getheader('Location'))
    query = (loc.query + '&' if loc.query else '') + 'digest=' + urllib.parse.quote(digest)
    request(conn, 'PUT', loc.path + '?' + query, data,
            {'Content-Type': 'application/octet-stream', 'Content-Length': str(len(data))}, 201)
    return {'mediaType': media_type, 'digest': digest, 'size': len(data)}


if __name__ == '__main__':
    main()
