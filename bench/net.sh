#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/net.sh: vmstream-send/vmstream-recv over TCP against the usual ways
# of moving a file over a socket, measured in the same runs (Issue 7, and the
# network targets of Issue 5).
#
#   bench/net.sh                       # 5 runs, 2 GiB files, loopback suite
#   bench/net.sh --quick               # smoke: 16 MiB, 1 run, seconds
#   bench/net.sh --runs 7 --size 1G --only baseline,plain
#   bench/net.sh --list                # the rows and what they run
#
# Loopback suite: the sender reads a file from tmpfs (/dev/shm: the page
# cache, no disk), the receiver writes to /dev/null. Data: `vmstream-bench
# gen --profile random|mixed`. Rows:
#   baselines  iperf3 -l 1M (-t 5, its -J rate), cat FILE | nc,
#              socat -b 1M FILE -> TCP -> /dev/null, the same with OPENSSL
#              (TLS 1.3, self-signed certificate made here), zstd -1 -T2 | nc,
#              zstd -1 | openssl enc -aes-256-ctr | nc
#   vmstream   plain (checksummed, unauthenticated loopback), --io uring and
#              posix, lanes 1/2/4; PSK + AES-256-GCM, lanes 1/2/4;
#              PSK + --compress auto + AES-256-GCM, lanes 1/2/4 (mixed);
#              --chunk-size 64K..16M sweeps; peak RSS of 256 MiB, 1 GiB and
#              8 GiB streams generated on the fly (gen | vmstream-send -),
#              --memory 64M on both sides
#   costs      per-byte costs for the CPU ceiling: openssl speed -evp
#              aes-256-gcm, zstd -b1 (compress, decompress) on each profile,
#              xxhsum -b (XXH3), cat FILE > /dev/null (file read), and the
#              TCP copy cost from the iperf3 row (CPU s/GB of both ends)
# The netns suite (--suite netns) is what bench/netns.sh runs inside the
# namespaces it sets up; see there.
#
# Method: every run measures every row once, in an order rotated from run to
# run with baselines spread between the vmstream rows; a row's numbers are
# medians over the runs with min and max; every ratio is taken inside a run
# (row / its baseline of the same run), then the median over the runs.
# Throughput is bytes of the original data per second (10^9 B/s = GB/s),
# wall time from starting the sender (the receiver already listens) until
# both ends exited. CPU: vmstream rows use the tools' --json cpu_user_s +
# cpu_sys_s; other rows the rusage of the process tree (wait4). Peak RSS:
# /usr/bin/time -f %M around each end (for the on-the-fly rows around
# vmstream-send inside the pipe). "other cores": CPU the rest of the
# machine used during the row (from /proc/stat, minus our processes').
#
# Options: --runs N (5), --size S (2G), --rss-sizes LIST (256M,1G,8G),
# --chunks LIST (64K,256K,1M,4M,16M), --iperf-seconds N (5), --only GROUPS
# (baseline,plain,aes,auto,lanes,chunk,rss,cost), --out FILE (default
# bench/results/net-<UTC stamp>.json; a .txt with the tables next to it),
# --tools-dir DIR (default $VMS_TOOLS_DIR, build-bench/bin, build/bin),
# --data-dir DIR (default a fresh directory in /dev/shm, removed at exit),
# --quick, --list. Needs iperf3, socat, nc (OpenBSD), zstd, openssl,
# xxhsum, /usr/bin/time, python3.
# Exit status: 0 (targets are reported, never enforced); 1 if a measurement
# failed (a tool failed, wrong byte count); 2 usage; 77 missing prerequisite.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
exec python3 - "$root" "$@" <<'PY'
import argparse, json, os, re, resource, shlex, shutil, signal, socket, subprocess, sys, tempfile, time

ROOT = sys.argv[1]
GiB = 1 << 30
MiB = 1 << 20


def parse_size(s):
    m = re.fullmatch(r'(\d+)\s*([KMGT]?)(i?B)?', s.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError('bad size %r' % s)
    return int(m.group(1)) << {'': 0, 'K': 10, 'M': 20, 'G': 30, 'T': 40}[m.group(2).upper()]


def size_name(n):
    for unit, sh in (('G', 30), ('M', 20), ('K', 10)):
        if n >= (1 << sh) and n % (1 << sh) == 0:
            return '%d%s' % (n >> sh, unit)
    return str(n)


ap = argparse.ArgumentParser(prog='net.sh', description='vmstream network benchmark')
ap.add_argument('--quick', action='store_true')
ap.add_argument('--runs', type=int)
ap.add_argument('--size', type=parse_size)
ap.add_argument('--rss-sizes')
ap.add_argument('--chunks')
ap.add_argument('--iperf-seconds', type=int)
ap.add_argument('--only')
ap.add_argument('--out')
ap.add_argument('--tools-dir')
ap.add_argument('--data-dir')
ap.add_argument('--list', action='store_true')
ap.add_argument('--suite', choices=['loopback', 'netns'], default='loopback')
# netns suite (bench/netns.sh passes these)
ap.add_argument('--ns-send')
ap.add_argument('--ns-recv')
ap.add_argument('--host', default='127.0.0.1')
ap.add_argument('--dev')
ap.add_argument('--rates', default='1gbit,10gbit')
ap.add_argument('--rate-sizes', default='1gbit=512M,10gbit=2G')
ap.add_argument('--bursts', default='1gbit=256kb,10gbit=2mb')
ap.add_argument('--mtu', default='')
ap.add_argument('--resummarize', metavar='JSON',
                help='recompute summaries, targets and ceilings of an earlier result file (no measuring)')
args = ap.parse_args(sys.argv[2:])
Q = args.quick
RUNS = args.runs or (1 if Q else 5)
SIZE = args.size or (16 * MiB if Q else 2 * GiB)
RSS_SIZES = [parse_size(x) for x in (args.rss_sizes or ('16M,64M' if Q else '256M,1G,8G')).split(',') if x]
CHUNKS = [parse_size(x) for x in (args.chunks or ('64K,1M,16M' if Q else '64K,256K,1M,4M,16M')).split(',') if x]
IPERF_T = args.iperf_seconds or (1 if Q else 5)
ONLY = set(args.only.split(',')) if args.only else None
if RUNS < 1 or RUNS > 99:
    ap.error('--runs 1..99')


def die(msg, code=1):
    print('net.sh: ' + msg, file=sys.stderr)
    sys.exit(code)


# ---- tools -------------------------------------------------------------------
def find_tools():
    cands = [args.tools_dir, os.environ.get('VMS_TOOLS_DIR'), os.path.join(ROOT, 'build-bench/bin'),
             os.path.join(ROOT, 'build/bin')]
    for d in cands:
        if d and os.path.isfile(os.path.join(d, 'vmstream-send')) and os.access(os.path.join(d, 'vmstream-send'), os.X_OK):
            return os.path.abspath(d)
    die('vmstream-send not found: build first (cmake --build build-bench) or pass --tools-dir', 77)


TOOLS = find_tools()
SEND = os.path.join(TOOLS, 'vmstream-send')
RECV = os.path.join(TOOLS, 'vmstream-recv')
GEN = os.path.join(TOOLS, 'vmstream-bench')
for t in (RECV, GEN):
    if not os.access(t, os.X_OK):
        die('%s missing' % t, 77)
for c in ('iperf3', 'socat', 'nc', 'zstd', 'openssl', 'xxhsum', 'bash'):
    if not shutil.which(c):
        die('%s is not installed' % c, 77)
TIME = '/usr/bin/time'
if not os.access(TIME, os.X_OK):
    die('/usr/bin/time is not installed (apt-get install time)', 77)
NETNS = args.suite == 'netns'
if NETNS and not (args.ns_send and args.ns_recv and args.dev and args.host != '127.0.0.1'):
    die('--suite netns needs --ns-send, --ns-recv, --dev and --host (run bench/netns.sh)', 2)


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def machine():
    model = ''
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for line in open('/proc/meminfo'):
        if line.startswith('MemTotal:'):
            mem = int(line.split()[1]) * 1024
    return {'nproc': os.cpu_count(), 'cpu_model': model, 'kernel': os.uname().release,
            'mem_gib': round(mem / GiB, 1), 'loadavg_start': open('/proc/loadavg').read().split()[:3],
            'versions': {'vmstream': sh(shlex.quote(SEND) + ' --version | head -1'),
                         'iperf3': sh('iperf3 --version | head -1'), 'socat': sh('socat -V | sed -n 2p'),
                         'zstd': sh('zstd --version'), 'openssl': sh('openssl version'),
                         'nc': sh('nc -h 2>&1 | head -1')},
            'git': sh('git -C %s rev-parse --short HEAD' % shlex.quote(ROOT)) +
                   (' + uncommitted changes' if sh('git -C %s status --porcelain -- libvmstream include tools' % shlex.quote(ROOT)) else '')}


# ---- temporary state, cleanup -------------------------------------------------
TMP = tempfile.mkdtemp(prefix='vmstream-net.', dir=os.environ.get('TMPDIR', '/tmp'))
LIVE = set()          # process-group ids we started and have not reaped
DATA_DIR = None
DATA_OWNED = False


def cleanup():
    for pid in list(LIVE):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
    LIVE.clear()
    shutil.rmtree(TMP, ignore_errors=True)
    if DATA_OWNED and DATA_DIR:
        shutil.rmtree(DATA_DIR, ignore_errors=True)


import atexit
atexit.register(cleanup)


def on_signal(sig, frame):
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGHUP, on_signal)

# ---- data ---------------------------------------------------------------------
PROFILES = ['random', 'mixed']


def mem_available():
    for line in open('/proc/meminfo'):
        if line.startswith('MemAvailable:'):
            return int(line.split()[1]) * 1024
    return 0


def make_data(sizes):
    """files DATA_DIR/<profile>-<size>.bin for every size, plus 128 MiB heads."""
    global DATA_DIR, DATA_OWNED
    if args.data_dir:
        DATA_DIR = args.data_dir
        os.makedirs(DATA_DIR, exist_ok=True)
    else:
        need = sum(sizes) * len(PROFILES)
        base = '/dev/shm' if os.path.isdir('/dev/shm') and shutil.disk_usage('/dev/shm').free > need + GiB else '/tmp'
        DATA_DIR = tempfile.mkdtemp(prefix='vmstream-net-data.', dir=base)
        DATA_OWNED = True
    need = sum(sizes) * len(PROFILES)
    if need * 2 > mem_available():
        print('net.sh: warning: %.1f GiB of data files may not stay cached (%.1f GiB available)'
              % (need / GiB, mem_available() / GiB), file=sys.stderr)
    files = {}
    for p in PROFILES:
        for s in sizes:
            f = os.path.join(DATA_DIR, '%s-%s.bin' % (p, size_name(s)))
            if not (os.path.exists(f) and os.path.getsize(f) == s):
                with open(f + '.tmp', 'wb') as out:
                    subprocess.run([GEN, 'gen', '--profile', p, '--size', str(s)], stdout=out, check=True)
                os.rename(f + '.tmp', f)
            files[(p, s)] = f
        h = os.path.join(DATA_DIR, '%s-head.bin' % p)
        hs = min(128 * MiB, max(sizes))
        if not (os.path.exists(h) and os.path.getsize(h) == hs):
            with open(h, 'wb') as out:
                subprocess.run([GEN, 'gen', '--profile', p, '--size', str(hs)], stdout=out, check=True)
        files[(p, 'head')] = h
    for f in files.values():     # into the page cache (tmpfs: already there)
        with open(f, 'rb') as fh:
            while fh.read(8 * MiB):
                pass
    return files


# ---- process helpers ------------------------------------------------------------
def spawn(argv, stdout=subprocess.DEVNULL, stderr=None, ns=None):
    if ns:
        argv = ['ip', 'netns', 'exec', ns] + argv
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                         start_new_session=True, close_fds=True)
    LIVE.add(p.pid)
    return p


def reap(p, deadline):
    """wait for p until deadline (monotonic); returns (rc, cpu_s) or kills it."""
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            LIVE.discard(p.pid)
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, ru.ru_utime + ru.ru_stime
        if time.monotonic() > deadline:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            pid, status, ru = os.wait4(p.pid, 0)
            LIVE.discard(p.pid)
            p.returncode = -9
            return 124, ru.ru_utime + ru.ru_stime
        time.sleep(0.002)


def listening(pid, port):
    for f in ('tcp', 'tcp6'):
        try:
            for line in open('/proc/%d/net/%s' % (pid, f)).read().splitlines()[1:]:
                parts = line.split()
                if parts[3] == '0A' and int(parts[1].rsplit(':', 1)[1], 16) == port:
                    return True
        except OSError:
            pass
    return False


def free_port():
    if NETNS:   # cannot bind the namespace's address from here; the netns is fresh
        import random
        return random.randint(20000, 59999)
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_busy():
    f = open('/proc/stat').readline().split()
    v = [int(x) for x in f[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf('SC_CLK_TCK')


def read_rss(path):
    try:
        return int(open(path).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def tail(path, n=400):
    try:
        return open(path, errors='replace').read()[-n:]
    except OSError:
        return ''


def load_json(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


# ---- rows -------------------------------------------------------------------------
class Row:
    def __init__(self, rid, label, group, kind, profile='-', **kw):
        self.id, self.label, self.group, self.kind, self.profile = rid, label, group, kind, profile
        self.params = kw.pop('params', {})
        self.base = kw.pop('base', None)
        self.base2 = kw.pop('base2', None)
        self.ref = kw.pop('ref', None)
        self.size = kw.pop('size', None)
        self.rate = kw.pop('rate', None)
        self.fn = kw.pop('fn', None)
        self.samples = []
        assert not kw, kw


ROWS = []
PSK = os.path.join(TMP, 'psk.hex')
CERT = os.path.join(TMP, 'cert.pem')
KEY = os.path.join(TMP, 'key.pem')


def want(group):
    return ONLY is None or group in ONLY


def pair(d, recv_argv, ready, send_fn, size, ns_recv=None, ns_send=None, send_inner_rss=False, timeout=None):
    """Start the receiver, wait until it listens, time the sender until both ended."""
    timeout = timeout or max(60.0, size / 20e6 + 30)
    rrss, srss = os.path.join(d, 'recv.rss'), os.path.join(d, 'send.rss')
    rerr, serr = open(os.path.join(d, 'recv.err'), 'wb'), open(os.path.join(d, 'send.err'), 'wb')
    r = spawn([TIME, '-f', '%M', '-o', rrss] + recv_argv, stderr=rerr, ns=ns_recv)
    t_ready = time.monotonic() + 15
    port = None
    while port is None:
        if ready[0] == 'portfile':
            try:
                txt = open(ready[1]).read().strip()
                port = int(txt) if txt else None
            except (OSError, ValueError):
                pass
        elif listening(r.pid, ready[1]):
            port = ready[1]
        if port is None:
            if r.poll() is not None or time.monotonic() > t_ready:
                reap(r, time.monotonic())
                return {'ok': False, 'error': 'receiver did not start: ' + tail(os.path.join(d, 'recv.err'))}
            time.sleep(0.005)
    sargv = send_fn(port)
    if not send_inner_rss:
        sargv = [TIME, '-f', '%M', '-o', srss] + sargv
    b0 = proc_busy()
    t0 = time.monotonic()
    s = spawn(sargv, stderr=serr, ns=ns_send)
    src, scpu = reap(s, t0 + timeout)
    rrc, rcpu = reap(r, max(time.monotonic() + 10, t0 + timeout))
    wall = time.monotonic() - t0
    busy = proc_busy() - b0
    rerr.close()
    serr.close()
    res = {'ok': src == 0 and rrc == 0, 'wall_s': wall, 'send_rc': src, 'recv_rc': rrc,
           'send_cpu_rusage_s': scpu, 'recv_cpu_rusage_s': rcpu,
           'send_rss_kib': read_rss(srss), 'recv_rss_kib': read_rss(rrss),
           'other_cores': max(0.0, (busy - scpu - rcpu) / wall) if wall > 0 else 0.0}
    if not res['ok']:
        res['error'] = 'send rc %d: %s | recv rc %d: %s' % (src, tail(os.path.join(d, 'send.err')), rrc,
                                                            tail(os.path.join(d, 'recv.err')))
    return res


def finish(res, nbytes, send_cpu=None, recv_cpu=None):
    res['bytes'] = nbytes
    if res.get('ok'):
        res.setdefault('gbps', nbytes / res['wall_s'] / 1e9)
        sc = res['send_cpu_rusage_s'] if send_cpu is None else send_cpu
        rc = res['recv_cpu_rusage_s'] if recv_cpu is None else recv_cpu
        res['send_cpu_s'], res['recv_cpu_s'] = sc, rc
        res['send_cpu_s_per_gb'] = sc / (nbytes / 1e9)
        res['recv_cpu_s_per_gb'] = rc / (nbytes / 1e9)
    return res


def iperf_row(rid, label, rate=None, base=None):
    def fn(d, r):
        port = free_port()
        host = args.host
        res = pair(d, ['iperf3', '-s', '-1', '-B', host, '-p', str(port)], ('listen', port),
                   lambda p: ['bash', '-c', 'exec iperf3 -c "$1" -p "$2" -l 1M -t "$3" -J > "$4"', '_',
                              host, str(p), str(IPERF_T), os.path.join(d, 'iperf.json')],
                   10 * GiB, ns_recv=args.ns_recv, ns_send=args.ns_send, timeout=IPERF_T + 30)
        j = load_json(os.path.join(d, 'iperf.json'))
        try:
            sr = j['end']['sum_received']
            nbytes = sr['bytes']
            res['gbps'] = sr['bits_per_second'] / 8 / 1e9
            res['iperf_cpu'] = j['end'].get('cpu_utilization_percent')
        except (TypeError, KeyError):
            res['ok'] = False
            res['error'] = res.get('error', '') + ' no iperf3 JSON'
            nbytes = 0
        return finish(res, nbytes)
    ROWS.append(Row(rid, label, 'baseline', 'baseline', params={'tool': 'iperf3', 'write': '1M', 't': IPERF_T},
                    rate=rate, base=base, fn=fn))


def pipe_row(rid, label, profile, recv, send_script, group='baseline', base='iperf3'):
    """recv: argv builder(port, d); send_script: bash script with $1 = FILE, $2 = PORT, $3 = HOST"""
    def fn(d, r):
        port = free_port()
        f = FILES[(profile, SIZE)]
        res = pair(d, recv(port, d), ('listen', port),
                   lambda p: ['bash', '-c', send_script, '_', f, str(p), args.host], SIZE)
        return finish(res, SIZE)
    ROWS.append(Row(rid, label, group, 'baseline', profile, params={'cmd': send_script}, base=base, fn=fn))


def vms_row(rid, label, group, profile, lanes=1, io='uring', compress='none', cipher='none', chunk=None,
            gen_size=None, base=None, base2=None, ref=None, rate=None, size=None, memory=None, threads=None):
    psk = cipher != 'none' or NETNS
    if chunk and not memory and parse_size(chunk) * 8 > 64 * MiB:
        # 16 MiB records with compression + cipher need more than the 64M default (both ends)
        memory = size_name(parse_size(chunk) * 8)

    def fn(d, r):
        nbytes = gen_size or size or SIZE
        pf = os.path.join(d, 'port')
        rj, sj = os.path.join(d, 'recv.json'), os.path.join(d, 'send.json')
        common = ['--quiet', '--no-progress', '--io', io]
        if psk:
            common += ['--psk-file', PSK]
        if memory:
            common += ['--memory', memory]
        if threads is not None:
            common += ['--threads', str(threads)]
        recv = [RECV, '--listen', '%s:0' % args.host, '--port-file', pf, '--json=' + rj,
                '--accept-timeout', '30'] + common + ['/dev/null']
        sopts = common + ['--lanes', str(lanes), '--compress', compress, '--encrypt', cipher, '--json=' + sj]
        if chunk:
            sopts += ['--chunk-size', chunk]

        if gen_size:
            def send(p):
                inner = [TIME, '-f', '%M', '-o', os.path.join(d, 'send.rss'), SEND,
                         '--to', '%s:%d' % (args.host, p)] + sopts + ['-']
                return ['bash', '-c', 'set -o pipefail; %s gen --profile %s --size %d | %s' %
                        (shlex.quote(GEN), profile, gen_size, ' '.join(shlex.quote(x) for x in inner))]
        else:
            f = FILES[(profile, nbytes)]

            def send(p):
                return [SEND, '--to', '%s:%d' % (args.host, p)] + sopts + [f]
        res = pair(d, recv, ('portfile', pf), send, nbytes, ns_recv=args.ns_recv, ns_send=args.ns_send,
                   send_inner_rss=bool(gen_size))
        sjs, rjs = load_json(sj), load_json(rj)
        if res['ok']:
            if not sjs or not rjs or sjs.get('bytes_in') != nbytes or rjs.get('bytes_out') != nbytes:
                res['ok'] = False
                res['error'] = 'byte count or JSON wrong: send %s recv %s' % (
                    sjs and sjs.get('bytes_in'), rjs and rjs.get('bytes_out'))
        if not res['ok']:
            return finish(res, nbytes)
        res['wire_bytes'] = sjs.get('bytes_on_wire')
        res['wire_ratio'] = res['wire_bytes'] / nbytes if res['wire_bytes'] else None
        res['engine'] = sjs.get('engine')
        res['cipher'] = sjs.get('cipher')
        res['tool_seconds'] = sjs.get('seconds')
        if gen_size:
            res['gen_cpu_s'] = res['send_cpu_rusage_s'] - (sjs['cpu_user_s'] + sjs['cpu_sys_s'])
        if sjs.get('engine') != ({'uring': 'io_uring'}.get(io, io)):
            res['note'] = 'engine %s' % sjs.get('engine')
        return finish(res, nbytes, sjs['cpu_user_s'] + sjs['cpu_sys_s'], rjs['cpu_user_s'] + rjs['cpu_sys_s'])
    params = {'lanes': lanes, 'io': io, 'compress': compress, 'cipher': cipher, 'chunk': chunk or '1M',
              'memory': memory or '64M', 'threads': 'auto' if threads is None else threads,
              'session': 'psk' if psk else 'insecure-loopback', 'size': gen_size or size or SIZE}
    if gen_size:
        params['source'] = 'gen | vmstream-send -'
    ROWS.append(Row(rid, label, group, 'vmstream', profile, params=params, base=base, base2=base2, ref=ref,
                    rate=rate, size=size, fn=fn))


def cost_row(rid, label, fn):
    ROWS.append(Row(rid, label, 'cost', 'cost', fn=fn))


def cost_aes(d, r):
    secs = '1' if Q else '2'
    t0 = time.monotonic()
    out = subprocess.run(['openssl', 'speed', '-evp', 'aes-256-gcm', '-bytes', '1048576', '-seconds', secs],
                         capture_output=True, text=True).stdout
    m = re.search(r'^aes-256-gcm\s+([\d.]+)k', out, re.M | re.I)
    if not m:
        return {'ok': False, 'error': 'openssl speed: ' + out[-200:]}
    g = float(m.group(1)) * 1000 / 1e9
    return {'ok': True, 'gbps': g, 'cpu_s_per_gb': 1 / g, 'wall_s': time.monotonic() - t0}


def cost_zstd(profile):
    def fn(d, r):
        h = FILES[(profile, 'head')]
        out = subprocess.run(['zstd', '-b1', '-i1', h], capture_output=True, text=True)
        txt = (out.stdout + out.stderr).replace('\r', '\n')
        m = re.findall(r'\(x?([\d.]+)\),\s+([\d.]+) MB/s,\s+([\d.]+) MB/s', txt)
        if not m:
            return {'ok': False, 'error': 'zstd -b: ' + txt[-200:]}
        ratio, c, dd = (float(x) for x in m[-1])
        return {'ok': True, 'ratio': ratio, 'compress_gbps': c / 1e3, 'decompress_gbps': dd / 1e3,
                'compress_cpu_s_per_gb': 1e3 / c, 'decompress_cpu_s_per_gb': 1e3 / dd}
    return fn


def cost_xxh3(d, r):
    out = subprocess.run(['xxhsum', '-b5', '-i1'], capture_output=True, text=True)
    txt = (out.stdout + out.stderr).replace('\r', '\n')
    m = re.findall(r'XXH3_64b\s*:.*?\(\s*([\d.]+) MB/s\)', txt)
    if not m:
        return {'ok': False, 'error': 'xxhsum -b: ' + txt[-200:]}
    g = float(m[-1]) / 1e3
    return {'ok': True, 'gbps': g, 'cpu_s_per_gb': 1 / g}


def cost_read(d, r):
    f = FILES[('random', SIZE)]
    t0 = time.monotonic()
    p = spawn(['cat', f])
    rc, cpu = reap(p, t0 + 120)
    wall = time.monotonic() - t0
    if rc:
        return {'ok': False, 'error': 'cat rc %d' % rc}
    return {'ok': True, 'gbps': SIZE / wall / 1e9, 'cpu_s_per_gb': cpu / (SIZE / 1e9), 'wall_s': wall}


# ---- row lists ----------------------------------------------------------------------
if not NETNS:
    if want('baseline'):
        iperf_row('iperf3', 'iperf3 -l 1M, 1 stream (no file, no processing)')
        pipe_row('cat-nc', 'cat FILE | nc', 'random', lambda p, d: ['nc', '-l', '-d', '127.0.0.1', str(p)],
                 'set -o pipefail; cat "$1" | nc -N "$3" "$2"')
        pipe_row('socat', 'socat -b 1M FILE -> TCP -> /dev/null', 'random',
                 lambda p, d: ['socat', '-b', '1048576', '-u', 'TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr' % p,
                               'OPEN:/dev/null'],
                 'exec socat -b 1048576 -u FILE:"$1" TCP:"$3":"$2"')
        pipe_row('socat-tls', 'socat -b 1M with OPENSSL (TLS 1.3)', 'random',
                 lambda p, d: ['socat', '-b', '1048576', '-u',
                               'OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,cert=%s,key=%s,verify=0' % (p, CERT, KEY),
                               'OPEN:/dev/null'],
                 'exec socat -b 1048576 -u FILE:"$1" OPENSSL:"$3":"$2",verify=0')
        for p in PROFILES:
            pipe_row('zstd-nc:' + p, 'zstd -1 -T2 -c FILE | nc', p,
                     lambda port, d: ['nc', '-l', '-d', '127.0.0.1', str(port)],
                     'set -o pipefail; zstd -q -1 -T2 -c "$1" | nc -N "$3" "$2"')
            pipe_row('zstd-openssl-nc:' + p, 'zstd -1 -c FILE | openssl enc -aes-256-ctr | nc', p,
                     lambda port, d: ['nc', '-l', '-d', '127.0.0.1', str(port)],
                     'set -o pipefail; zstd -q -1 -c "$1" | openssl enc -aes-256-ctr -pass pass:x -pbkdf2 | nc -N "$3" "$2"')
    for p in PROFILES:
        auto_base = ('zstd-nc:mixed', 'zstd-openssl-nc:mixed') if p == 'mixed' else ('zstd-openssl-nc:random', 'socat-tls')
        if want('plain'):
            vms_row('%s/plain/uring/L1' % p, 'vmstream plain (checksummed), io_uring, 1 lane', 'plain', p,
                    base='iperf3', base2='socat')
            if p == 'random':
                vms_row('%s/plain/posix/L1' % p, 'vmstream plain (checksummed), posix, 1 lane', 'plain', p,
                        io='posix', base='iperf3', base2='socat', ref='%s/plain/uring/L1' % p)
                vms_row('%s/plain/uring/L1/threads0' % p, 'vmstream plain, io_uring, 1 lane, --threads 0 (both ends)',
                        'plain', p, threads=0, base='iperf3', base2='socat', ref='%s/plain/uring/L1' % p)
        if want('lanes') and p == 'random':
            for lanes in (2, 4):
                vms_row('%s/plain/uring/L%d' % (p, lanes), 'vmstream plain, io_uring, %d lanes' % lanes, 'lanes', p,
                        lanes=lanes, base='iperf3', base2='socat', ref='%s/plain/uring/L1' % p)
        if want('aes'):
            vms_row('%s/aes/uring/L1' % p, 'vmstream PSK + AES-256-GCM, 1 lane', 'aes', p, cipher='aes-256-gcm',
                    base='socat-tls', base2='iperf3')
        if want('lanes') and p == 'random':
            for lanes in (2, 4):
                vms_row('%s/aes/uring/L%d' % (p, lanes), 'vmstream PSK + AES-256-GCM, %d lanes' % lanes, 'lanes', p,
                        lanes=lanes, cipher='aes-256-gcm', base='socat-tls', base2='iperf3',
                        ref='%s/aes/uring/L1' % p)
        if want('auto'):
            vms_row('%s/auto+aes/uring/L1' % p, 'vmstream PSK + compress auto + AES-256-GCM, 1 lane', 'auto', p,
                    compress='auto', cipher='aes-256-gcm', base=auto_base[0], base2=auto_base[1])
        if want('lanes') and p == 'mixed':
            for lanes in (2, 4):
                vms_row('%s/auto+aes/uring/L%d' % (p, lanes), 'vmstream PSK + auto + AES-256-GCM, %d lanes' % lanes,
                        'lanes', p, lanes=lanes, compress='auto', cipher='aes-256-gcm', base=auto_base[0],
                        base2=auto_base[1], ref='%s/auto+aes/uring/L1' % p)
    if want('chunk'):
        for c in CHUNKS:
            if c == MiB:
                continue   # the 1M point is the main row
            vms_row('random/plain/uring/L1/chunk%s' % size_name(c), 'vmstream plain, 1 lane, --chunk-size %s' % size_name(c),
                    'chunk', 'random', chunk=size_name(c), base='iperf3', base2='socat', ref='random/plain/uring/L1')
            vms_row('mixed/auto+aes/uring/L1/chunk%s' % size_name(c),
                    'vmstream PSK + auto + AES, 1 lane, --chunk-size %s' % size_name(c), 'chunk', 'mixed',
                    compress='auto', cipher='aes-256-gcm', chunk=size_name(c), base='zstd-nc:mixed',
                    base2='zstd-openssl-nc:mixed', ref='mixed/auto+aes/uring/L1')
    if want('rss'):
        for s in RSS_SIZES:
            vms_row('mixed/auto+aes/rss%s' % size_name(s),
                    'gen | vmstream-send - (%s, PSK + auto + AES, --memory 64M)' % size_name(s), 'rss', 'mixed',
                    compress='auto', cipher='aes-256-gcm', gen_size=s, memory='64M')
    if want('cost'):
        cost_row('cost/aes-gcm', 'openssl speed -evp aes-256-gcm, 1 MiB buffers, 1 core', cost_aes)
        for p in PROFILES:
            cost_row('cost/zstd1:' + p, 'zstd -b1 on 128 MiB of %s (compress / decompress, 1 core)' % p, cost_zstd(p))
        cost_row('cost/xxh3', 'xxhsum -b (XXH3-64, 100 KB, hot cache)', cost_xxh3)
        cost_row('cost/read', 'cat FILE > /dev/null (cached file read)', cost_read)
else:
    RATES = [x for x in args.rates.split(',') if x]
    RSIZE = dict((k, parse_size(v)) for k, v in (x.split('=') for x in args.rate_sizes.split(',') if x))
    for rate in RATES:
        sz = RSIZE.get(rate, SIZE)
        if Q:
            sz = min(sz, 16 * MiB)
        iperf_row('iperf3@' + rate, 'iperf3 -l 1M across the veth, TBF %s' % rate, rate=rate)
        for p in PROFILES:
            vms_row('%s/auto+aes@%s' % (p, rate), 'vmstream PSK + compress auto + AES-256-GCM, 1 lane, TBF %s' % rate,
                    'netns', p, compress='auto', cipher='aes-256-gcm', base='iperf3@' + rate, rate=rate, size=sz)

if args.list:
    for row in ROWS:
        print('%-36s %-9s %-8s %s' % (row.id, row.group, row.profile, row.label))
    sys.exit(0)
if not ROWS:
    die('no rows selected', 2)

# ---- tc (netns suite) -------------------------------------------------------------
CUR_RATE = [None]


def rate_bits(rate):
    m = re.fullmatch(r'(\d+)([kmg]?)bit', rate)
    return int(m.group(1)) * {'': 1, 'k': 1e3, 'm': 1e6, 'g': 1e9}[m.group(2)]


def set_rate(rate):
    if rate is None or CUR_RATE[0] == rate:
        return
    bursts = dict(x.split('=') for x in args.bursts.split(',') if x)
    burst = bursts.get(rate, '256kb')
    subprocess.run(['ip', 'netns', 'exec', args.ns_send, 'tc', 'qdisc', 'replace', 'dev', args.dev, 'root',
                    'tbf', 'rate', rate, 'burst', burst, 'latency', '50ms'], check=True)
    CUR_RATE[0] = rate


# ---- run --------------------------------------------------------------------------------
def order_for_run(r):
    """baselines and costs spread evenly between the measured rows, both rotated per run"""
    base = [x for x in ROWS if x.kind != 'vmstream']
    meas = [x for x in ROWS if x.kind == 'vmstream']
    if base:
        k = r * len(base) // RUNS
        base = base[k:] + base[:k]
    if meas:
        k = r * len(meas) // RUNS
        meas = meas[k:] + meas[:k]
    out = []
    if not meas:
        return base
    step = len(meas) / (len(base) + 1)
    bi = 0
    for i, m in enumerate(meas):
        while bi < len(base) and (bi + 1) * step <= i + 1e-9:
            out.append(base[bi])
            bi += 1
        out.append(m)
    out += base[bi:]
    if NETNS:   # keep rows of one rate together (fewer qdisc changes), rates alternate per run
        rates = [x for x in dict.fromkeys(row.rate for row in ROWS)]
        rates = rates[r % len(rates):] + rates[:r % len(rates)]
        out = [row for rt in rates for row in out if row.rate == rt]
    return out


def stats(vals):
    v = sorted(x for x in vals if x is not None)
    if not v:
        return None
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return {'median': med, 'min': v[0], 'max': v[-1], 'n': n}


STAMP = time.strftime('%Y-%m-%dT%H%MZ', time.gmtime())
OUT = args.out or os.path.join(ROOT, 'bench/results', '%s-%s.json' % ('net' if not NETNS else 'netns', STAMP))
failures = 0
BYID = {row.id: row for row in ROWS}
OLD = None
if args.resummarize:
    OLD = json.load(open(args.resummarize))
    OUT = args.resummarize
    oldrows = {o['id']: o for o in OLD['rows']}
    for row in ROWS:
        row.samples = oldrows.get(row.id, {}).get('samples', [])
    ROWS[:] = [row for row in ROWS if row.samples]
    BYID = {row.id: row for row in ROWS}
    MACHINE, WALL = OLD['machine'], OLD['wall_s']
    failures = OLD['failures']
    RUNS = OLD['config']['runs']

try:
    if OLD:
        raise StopIteration
    sizes = {SIZE}
    for row in ROWS:
        if row.size:
            sizes.add(row.size if not Q else min(row.size, 16 * MiB))
    if NETNS:
        sizes = {s for s in sizes if any((row.size or SIZE) == s for row in ROWS if row.kind == 'vmstream')}
    FILES = make_data(sorted(sizes))
    with open(PSK, 'w', opener=lambda p, f: os.open(p, f, 0o600)) as fh:
        fh.write(os.urandom(32).hex() + '\n')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                    '-keyout', KEY, '-out', CERT, '-days', '2', '-subj', '/CN=localhost'],
                   check=True, capture_output=True)
    MACHINE = machine()
    print('net.sh: suite %s, %d run(s), %d rows, files of %s (%s), tools %s' % (
        args.suite, RUNS, len(ROWS), ', '.join(size_name(s) for s in sorted(sizes)), DATA_DIR, TOOLS), flush=True)
    print('net.sh: %s, %d cores, kernel %s, load %s' % (MACHINE['cpu_model'], MACHINE['nproc'], MACHINE['kernel'],
                                                        ' '.join(MACHINE['loadavg_start'])), flush=True)
    T_START = time.monotonic()
    for r in range(RUNS):
        tr = time.monotonic()
        for row in order_for_run(r):
            set_rate(row.rate)
            d = os.path.join(TMP, 'r%d-%s' % (r, re.sub(r'[^A-Za-z0-9_.+-]', '_', row.id)))
            os.makedirs(d, exist_ok=True)
            res = row.fn(d, r)
            res['run'] = r
            row.samples.append(res)
            if not res.get('ok'):
                failures += 1
                print('  FAIL %-40s %s' % (row.id, res.get('error', '')), flush=True)
            elif args.quick or os.environ.get('VMS_BENCH_VERBOSE'):
                print('  %-40s %s' % (row.id, ' '.join('%s=%.4g' % (k, v) for k, v in res.items()
                                                         if isinstance(v, float) and k in ('gbps', 'send_cpu_s_per_gb', 'recv_cpu_s_per_gb', 'compress_gbps', 'other_cores'))), flush=True)
            shutil.rmtree(d, ignore_errors=True)
        print('net.sh: run %d/%d done in %.0f s' % (r + 1, RUNS, time.monotonic() - tr), flush=True)
    WALL = time.monotonic() - T_START
except StopIteration:
    pass
except KeyboardInterrupt:
    print('net.sh: interrupted', file=sys.stderr)
    cleanup()
    sys.exit(130)
except BaseException:
    cleanup()
    raise

# ---- summaries -------------------------------------------------------------------------
def by_run(row):
    return {s['run']: s for s in (row.samples if row else []) if s.get('ok')}


def ratio_stats(num_id, den_id, key='gbps', den_val=None):
    a = by_run(BYID.get(num_id))
    if den_val is not None:
        return stats([a[r][key] / den_val for r in a]), [a[r][key] / den_val for r in sorted(a)]
    b = by_run(BYID.get(den_id))
    v = [a[r][key] / b[r][key] for r in sorted(a) if r in b and b[r].get(key)]
    return stats(v), v


METRICS = ['gbps', 'wall_s', 'send_cpu_s_per_gb', 'recv_cpu_s_per_gb', 'send_rss_kib', 'recv_rss_kib',
           'other_cores', 'wire_ratio', 'ratio', 'compress_gbps', 'decompress_gbps', 'compress_cpu_s_per_gb',
           'decompress_cpu_s_per_gb', 'cpu_s_per_gb', 'gen_cpu_s']
rows_out = []
for row in ROWS:
    ok = [s for s in row.samples if s.get('ok')]
    summ = {}
    for m in METRICS:
        st = stats([s.get(m) for s in ok])
        if st:
            summ[m] = st
    o = {'id': row.id, 'label': row.label, 'group': row.group, 'kind': row.kind, 'profile': row.profile,
         'params': row.params, 'base': row.base, 'base2': row.base2, 'ref': row.ref, 'rate': row.rate,
         'samples': row.samples, 'summary': summ, 'failed': len(row.samples) - len(ok)}
    for k in ('base', 'base2', 'ref'):
        if getattr(row, k) in BYID:
            o['x_' + k] = ratio_stats(row.id, getattr(row, k))[0]
    if row.rate:
        o['x_shaped'] = ratio_stats(row.id, None, den_val=rate_bits(row.rate) / 8 / 1e9)[0]
    rows_out.append(o)
OUTROWS = {o['id']: o for o in rows_out}

targets = []


def target(tid, label, st, goal, op='>=', unit='x', note=''):
    met = None
    if st:
        met = st['median'] >= goal if op == '>=' else st['median'] <= goal
    targets.append({'id': tid, 'label': label, 'value': st, 'goal': goal, 'op': op, 'unit': unit, 'met': met,
                    'note': note})


if not NETNS:
    for p in ('random', 'mixed'):
        sfx = '' if p == 'random' else ' (mixed data, for information)'
        if p == 'random' or 'mixed/plain/uring/L1' in BYID:
            target('plain-vs-iperf3' + ('' if p == 'random' else ':mixed'),
                   'plain 1 lane vs iperf3 -l 1M' + sfx, ratio_stats('%s/plain/uring/L1' % p, 'iperf3')[0], 0.75)
            target('plain-vs-socat' + ('' if p == 'random' else ':mixed'),
                   'plain 1 lane vs socat -b 1M' + sfx, ratio_stats('%s/plain/uring/L1' % p, 'socat')[0], 1.2)
            target('aes-vs-socat-tls' + ('' if p == 'random' else ':mixed'),
                   'AES-256-GCM 1 lane vs socat OPENSSL' + sfx, ratio_stats('%s/aes/uring/L1' % p, 'socat-tls')[0], 1.5)
            target('aes-vs-iperf3' + ('' if p == 'random' else ':mixed'),
                   'AES-256-GCM 1 lane vs iperf3' + sfx, ratio_stats('%s/aes/uring/L1' % p, 'iperf3')[0], 0.4)
    target('auto-vs-zstd-nc', 'auto + AES 1 lane vs zstd -1 -T2 | nc (mixed)',
           ratio_stats('mixed/auto+aes/uring/L1', 'zstd-nc:mixed')[0], 2.0)
    target('auto-vs-zstd-openssl-nc', 'auto + AES 1 lane vs zstd -1 | openssl enc | nc (mixed)',
           ratio_stats('mixed/auto+aes/uring/L1', 'zstd-openssl-nc:mixed')[0], 2.5)
    for s in RSS_SIZES:
        o = OUTROWS.get('mixed/auto+aes/rss%s' % size_name(s))
        if not o:
            continue
        for side in ('send', 'recv'):
            st = o['summary'].get('%s_rss_kib' % side)
            st = {k: (v / 1024 if k != 'n' else v) for k, v in st.items()} if st else None
            target('rss-%s-%s' % (side, size_name(s)), 'peak RSS, %s, %s stream, --memory 64M' % (
                'sender' if side == 'send' else 'receiver', size_name(s)), st, 96, '<=', 'MiB',
                note='memory + 32 MiB')
else:
    for rate in RATES:
        target('random-auto@' + rate, 'random data, auto + AES, vs shaped rate %s' % rate,
               OUTROWS.get('random/auto+aes@' + rate, {}).get('x_shaped'), 0.95)
    if '1gbit' in RATES:
        target('mixed-auto@1gbit', 'mixed data, auto + AES, raw bytes/s vs shaped rate 1gbit',
               OUTROWS.get('mixed/auto+aes@1gbit', {}).get('x_shaped'), 1.8)

# ---- CPU ceiling (loopback) --------------------------------------------------------------
ceilings = []
costs_out = {}
if not NETNS and 'iperf3' in BYID and 'cost/aes-gcm' in BYID:
    ip, aes, xxh, rd = (by_run(BYID.get(k)) for k in ('iperf3', 'cost/aes-gcm', 'cost/xxh3', 'cost/read'))
    zs = {p: by_run(BYID.get('cost/zstd1:' + p)) for p in PROFILES}
    for row in ROWS:
        if row.kind != 'vmstream' or row.params.get('source'):
            continue
        per = []
        for r, s in by_run(row).items():
            if r not in ip or r not in aes:
                continue
            w = s.get('wire_ratio') or 1.0
            tcp = ip[r]['send_cpu_s_per_gb'] + ip[r]['recv_cpu_s_per_gb']
            parts = {'read': rd[r]['cpu_s_per_gb'] if r in rd else 0.0, 'tcp': tcp * w,
                     'xxh3': 2 * xxh[r]['cpu_s_per_gb'] if r in xxh else 0.0}
            if row.params['cipher'] != 'none':
                parts['aes'] = 2 * aes[r]['cpu_s_per_gb'] * w
            if row.params['compress'] != 'none' and r in zs[row.profile]:
                z = zs[row.profile][r]
                frac = 1.0
                if row.params['compress'] == 'auto':
                    # auto stores chunks raw when compressing does not pay: scale by the
                    # fraction it compressed, estimated from wire/raw and zstd -1's ratio
                    # on this data (0 on incompressible data)
                    r1 = z.get('ratio', 1.0)
                    frac = min(1.0, max(0.0, (1 - w) / (1 - 1 / r1))) if r1 > 1.01 else 0.0
                parts['zstd'] = frac * (z['compress_cpu_s_per_gb'] + z['decompress_cpu_s_per_gb'])
            cost = sum(parts.values())
            ceil = min(os.cpu_count(), 2) / cost
            per.append({'run': r, 'ceiling_gbps': ceil, 'near': s['gbps'] / ceil, 'model_cpu_s_per_gb': cost,
                        'measured_cpu_s_per_gb': s['send_cpu_s_per_gb'] + s['recv_cpu_s_per_gb'], 'parts': parts})
        if per:
            ceilings.append({'id': row.id, 'ceiling_gbps': stats([x['ceiling_gbps'] for x in per]),
                             'near': stats([x['near'] for x in per]),
                             'model_cpu_s_per_gb': stats([x['model_cpu_s_per_gb'] for x in per]),
                             'measured_cpu_s_per_gb': stats([x['measured_cpu_s_per_gb'] for x in per]),
                             'parts': {k: stats([x['parts'].get(k) for x in per]) for k in per[0]['parts']},
                             'per_run': per})
    for k in ('cost/aes-gcm', 'cost/xxh3', 'cost/read', 'cost/zstd1:random', 'cost/zstd1:mixed'):
        if k in OUTROWS:
            costs_out[k] = OUTROWS[k]['summary']
    if 'iperf3' in OUTROWS:
        costs_out['tcp (iperf3 send+recv)'] = stats([s['send_cpu_s_per_gb'] + s['recv_cpu_s_per_gb']
                                                     for s in by_run(BYID['iperf3']).values()])

if not OLD:
    MACHINE['loadavg_end'] = open('/proc/loadavg').read().split()[:3]
result = {'suite': args.suite, 'created': OLD['created'] if OLD else time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
          'quick': OLD['quick'] if OLD else Q,
          'machine': MACHINE, 'config': {'runs': RUNS, 'size': SIZE, 'rss_sizes': RSS_SIZES, 'chunks': CHUNKS,
                                         'iperf_seconds': IPERF_T, 'data_dir': DATA_DIR, 'tools': TOOLS,
                                         'host': args.host, 'rates': args.rates if NETNS else None,
                                         'rate_sizes': args.rate_sizes if NETNS else None,
                                         'bursts': args.bursts if NETNS else None, 'mtu': args.mtu or None,
                                         'command': 'bench/net.sh ' + ' '.join(shlex.quote(a) for a in sys.argv[2:])},
          'wall_s': WALL, 'failures': failures, 'rows': rows_out, 'targets': targets, 'ceilings': ceilings,
          'costs': costs_out}
if OLD:
    result['config'] = OLD['config']
    result['resummarized'] = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())

# ---- tables -----------------------------------------------------------------------------------
def f3(st, scale=1.0, fmt='%.3f'):
    if not st:
        return '-'
    return fmt % (st['median'] * scale)


def rng(st, scale=1.0, fmt='%.2f'):
    if not st:
        return ''
    return '[' + fmt % (st['min'] * scale) + '..' + fmt % (st['max'] * scale) + ']'


lines = []
lines.append('net.sh %s suite, %s, %d run(s), %s per transfer; medians [min..max]; GB/s = 10^9 B/s of raw data' % (
    args.suite, result['created'], RUNS, size_name(SIZE) if not NETNS else args.rate_sizes))
lines.append('machine: %s, %d cores, kernel %s, load at start %s, at end %s' % (
    MACHINE['cpu_model'], MACHINE['nproc'], MACHINE['kernel'], ' '.join(MACHINE['loadavg_start']),
    ' '.join(MACHINE['loadavg_end'])))
lines.append('')
hdr = '%-38s %-7s %17s %12s %12s %-22s %18s %13s %6s' % ('row', 'data', 'GB/s', 'send s/GB', 'recv s/GB', 'baseline',
                                                       'x baseline', 'RSS MiB s/r', 'other')
lines.append(hdr)
lines.append('-' * len(hdr))
for o in rows_out:
    if o['kind'] == 'cost':
        continue
    s = o['summary']
    xb = o.get('x_base') or o.get('x_shaped')
    bname = o['base'] or ('shaped ' + o['rate'] if o.get('rate') else '')
    if o.get('x_shaped') and o['kind'] == 'vmstream':
        bname, xb = 'shaped ' + o['rate'], o['x_shaped']
    rss = '%s/%s' % (f3(s.get('send_rss_kib'), 1 / 1024, '%.0f'), f3(s.get('recv_rss_kib'), 1 / 1024, '%.0f'))
    lines.append('%-38s %-7s %6s %-10s %12s %12s %-22s %6s %-11s %13s %6s%s' % (
        o['id'], o['profile'], f3(s.get('gbps')), rng(s.get('gbps')), f3(s.get('send_cpu_s_per_gb')),
        f3(s.get('recv_cpu_s_per_gb')), bname, f3(xb), rng(xb), rss, f3(s.get('other_cores'), fmt='%.2f'),
        '  FAILED %d' % o['failed'] if o['failed'] else ''))
    if NETNS and o.get('x_base') and o['kind'] == 'vmstream':
        lines.append('%-38s %-7s %70s %6s %-11s' % ('', '', 'x iperf3 on the same link', f3(o['x_base']),
                                                    rng(o['x_base'])))
if costs_out:
    lines.append('')
    lines.append('per-byte costs (same runs): CPU s per GB, one core')
    for k, v in costs_out.items():
        if 'compress_cpu_s_per_gb' in v:
            lines.append('  %-30s compress %s s/GB (%s GB/s), decompress %s s/GB (%s GB/s), ratio %s' % (
                k, f3(v['compress_cpu_s_per_gb']), f3(v['compress_gbps']), f3(v['decompress_cpu_s_per_gb']),
                f3(v['decompress_gbps']), f3(v.get('ratio'))))
        elif 'cpu_s_per_gb' in v:
            lines.append('  %-30s %s s/GB (%s GB/s)' % (k, f3(v['cpu_s_per_gb']), f3(v.get('gbps'))))
        else:
            lines.append('  %-30s %s s/GB' % (k, f3(v)))
if ceilings:
    lines.append('')
    lines.append('CPU ceiling: 2 cores / (read + TCP x wire + 2 x XXH3 + 2 x AES x wire + f x zstd -1 (comp + decomp)), per run;')
    lines.append('  f = 1, or for auto the fraction of bytes it compressed, estimated from wire/raw and zstd -1\'s ratio')
    lines.append('%-38s %12s %10s %14s %14s' % ('row', 'ceiling GB/s', 'of ceiling', 'model s/GB', 'measured s/GB'))
    for c in ceilings:
        lines.append('%-38s %12s %10s %14s %14s' % (c['id'], f3(c['ceiling_gbps']), f3(c['near'], fmt='%.2f'),
                                                    f3(c['model_cpu_s_per_gb']), f3(c['measured_cpu_s_per_gb'])))
if targets:
    lines.append('')
    lines.append('targets (ratio per run, median [min..max])')
    for t in targets:
        v = t['value']
        lines.append('  %-62s %8s %-16s %s %g%s  %s' % (
            t['label'], f3(v, fmt='%.4f' if t['unit'] == 'x' else '%.1f'), rng(v, fmt='%.2f' if t['unit'] == 'x' else '%.1f'),
            t['op'], t['goal'], '' if t['unit'] == 'x' else ' ' + t['unit'],
            'no data' if t['met'] is None else ('MET' if t['met'] else 'NOT MET')))
lines.append('')
lines.append('wall time %.0f s; %d failed measurement(s)' % (WALL, failures))
text = '\n'.join(lines)
print('\n' + text)
os.makedirs(os.path.dirname(os.path.abspath(OUT)), exist_ok=True)
with open(OUT + '.tmp', 'w') as fh:
    json.dump(result, fh, indent=1)
os.rename(OUT + '.tmp', OUT)
with open(re.sub(r'\.json$', '', OUT) + '.txt', 'w') as fh:
    fh.write(text + '\n')
print('net.sh: results in %s' % OUT, file=sys.stderr)
cleanup()
sys.exit(1 if failures else 0)
PY
