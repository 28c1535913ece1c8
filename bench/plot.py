#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/plot.py: SVG plots (and, with --doc, docs/PERFORMANCE.md) from the
JSON results the benchmark scripts write into bench/results/.

    bench/plot.py                                   # newest results -> bench/results/*.svg
    bench/plot.py --results DIR --out DIR
    bench/plot.py --doc docs/PERFORMANCE.md         # also regenerate the document

Inputs (the newest of each kind in --results, or given explicitly):
    net-*.json            bench/net.sh (loopback suite)
    netns-mtu*-*.json     bench/netns.sh (one per MTU, same stamp)
    device-*.json         bench_device --json (bench/device.sh)
    stages-*.txt          bench/stages.sh (quoted in the document)
    analysis.md           hand-written analysis of the run (quoted in the document)
Outputs: throughput-baselines.svg, throughput-lanes.svg, throughput-chunk.svg,
rss-stream-size.svg, netns.svg (if there are netns results), device.svg.
No third-party packages: the SVG is written by hand.
"""
import argparse
import glob
import html
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

COLORS = {'baseline': '#8c8c8c', 'vmstream': '#1f77b4', 'plain': '#1f77b4', 'aes': '#d62728', 'auto': '#2ca02c',
          'send': '#1f77b4', 'recv': '#ff7f0e', 'limit': '#d62728', 'shaped': '#444444', 'iperf3': '#8c8c8c'}
SERIES = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b']


def esc(s):
    return html.escape(str(s), quote=True)


def newest(pattern):
    files = sorted(glob.glob(pattern), key=lambda f: (os.path.getmtime(f), f))
    return files[-1] if files else None


def load(path):
    if not path:
        return None
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as e:
        print('plot.py: %s: %s' % (path, e), file=sys.stderr)
        return None


def nice_max(v):
    if v <= 0:
        return 1.0
    import math
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def ticks(vmax, n=5):
    step = vmax / n
    return [step * i for i in range(n + 1)]


def tick_fmt(v):
    return '%g' % round(v, 6)


def fmt(v):
    if v == 0:
        return '0'
    if abs(v) >= 100:
        return '%.0f' % v
    if abs(v) >= 10:
        return '%.1f' % v
    if abs(v) >= 1:
        return '%.2f' % v
    return '%.3f' % v


class Svg:
    def __init__(self, w, h, title):
        self.w, self.h = w, h
        self.parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
                      'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">' % (w, h, w, h),
                      '<rect width="100%" height="100%" fill="white"/>',
                      '<text x="%d" y="22" font-size="15" font-weight="bold" text-anchor="middle">%s</text>'
                      % (w // 2, esc(title))]

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, anchor='start', size=12, color='#000', extra=''):
        self.add('<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d" fill="%s" %s>%s</text>'
                 % (x, y, anchor, size, color, extra, esc(s)))

    def line(self, x1, y1, x2, y2, color='#000', width=1, dash=None):
        self.add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s/>'
                 % (x1, y1, x2, y2, color, width, ' stroke-dasharray="%s"' % dash if dash else ''))

    def rect(self, x, y, w, h, color, title=None):
        t = '<title>%s</title>' % esc(title) if title else ''
        self.add('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">%s</rect>' % (x, y, max(w, 0), h, color, t))

    def save(self, path):
        self.add('</svg>')
        with open(path, 'w') as fh:
            fh.write('\n'.join(self.parts) + '\n')


def hbars(path, title, items, unit, note=None, ref_lines=()):
    """items: list of (label, median, min, max, color, annotation); horizontal bars with min..max whiskers."""
    if not items:
        return False
    left, right, top, bar, gap = 330, 110, 40, 18, 6
    h = top + len(items) * (bar + gap) + 60 + (16 if note else 0)
    w = 960
    svg = Svg(w, h, title)
    vmax = nice_max(max(max(i[3] or i[1] or 0 for i in items), max([r[0] for r in ref_lines] or [0])))
    pw = w - left - right
    x0 = left
    ybot = top + len(items) * (bar + gap)
    for t in ticks(vmax):
        x = x0 + pw * t / vmax
        svg.line(x, top - 4, x, ybot, '#e0e0e0')
        svg.text(x, ybot + 16, tick_fmt(t), 'middle', 11)
    svg.text(x0 + pw / 2, ybot + 34, unit, 'middle', 12)
    for i, (label, med, lo, hi, color, ann) in enumerate(items):
        y = top + i * (bar + gap)
        svg.text(left - 8, y + bar - 4, label, 'end', 11)
        if med is None:
            svg.text(x0 + 4, y + bar - 4, 'no data', 'start', 11, '#a00')
            continue
        svg.rect(x0, y, pw * med / vmax, bar, color, '%s: %s %s [%s .. %s]' % (label, fmt(med), unit, fmt(lo), fmt(hi)))
        if lo is not None and hi is not None:
            xl, xh = x0 + pw * lo / vmax, x0 + pw * hi / vmax
            svg.line(xl, y + bar / 2, xh, y + bar / 2, '#000', 1.2)
            svg.line(xl, y + 4, xl, y + bar - 4, '#000', 1.2)
            svg.line(xh, y + 4, xh, y + bar - 4, '#000', 1.2)
        svg.text(x0 + pw * max(med, hi or med) / vmax + 6, y + bar - 4, fmt(med) + (' ' + ann if ann else ''), 'start', 11)
    for val, label, color in ref_lines:
        x = x0 + pw * val / vmax
        svg.line(x, top - 6, x, ybot, color, 1.5, '5,3')
        svg.text(x + 3, top - 8, label, 'start', 10, color)
    if note:
        svg.text(10, h - 10, note, 'start', 10, '#555')
    svg.save(path)
    return True


def lines_chart(path, title, xlabels, series, ylabel, xlabel, hlines=(), note=None, ymax=None):
    """series: list of (name, color, [(median, min, max) or None per x]); categorical x."""
    if not series or not xlabels:
        return False
    w, h = 760, 470
    left, right, top, bottom = 70, 170, 40, 100
    pw, ph = w - left - right, h - top - bottom
    svg = Svg(w, h, title)
    vals = [p[2] for _, _, pts in series for p in pts if p] + [v for v, _, _ in hlines]
    vmax = ymax or nice_max(max(vals) if vals else 1)
    for t in ticks(vmax):
        y = top + ph - ph * t / vmax
        svg.line(left, y, left + pw, y, '#e0e0e0')
        svg.text(left - 6, y + 4, tick_fmt(t), 'end', 11)
    svg.line(left, top, left, top + ph)
    svg.line(left, top + ph, left + pw, top + ph)
    n = len(xlabels)

    def xpos(i):
        return left + (pw * (i + 0.5) / n)
    for i, xl in enumerate(xlabels):
        svg.text(xpos(i), top + ph + 18, xl, 'middle', 11)
    svg.text(left + pw / 2, top + ph + 40, xlabel, 'middle', 12)
    svg.text(16, top + ph / 2, ylabel, 'middle', 12, extra='transform="rotate(-90 16 %.1f)"' % (top + ph / 2))
    for v, label, color in hlines:
        y = top + ph - ph * v / vmax
        svg.line(left, y, left + pw, y, color, 1.5, '6,4')
        svg.text(left + pw + 6, y + 4, '%s %s' % (label, fmt(v)), 'start', 10, color)
    lx = left
    for k, (name, color, pts) in enumerate(series):
        prev = None
        for i, p in enumerate(pts):
            if not p:
                prev = None
                continue
            x, y = xpos(i), top + ph - ph * p[0] / vmax
            if prev:
                svg.line(prev[0], prev[1], x, y, color, 2)
            if p[1] is not None:
                y1, y2 = top + ph - ph * p[1] / vmax, top + ph - ph * p[2] / vmax
                svg.line(x, y1, x, y2, color, 1)
                svg.line(x - 4, y1, x + 4, y1, color, 1)
                svg.line(x - 4, y2, x + 4, y2, color, 1)
            svg.add('<circle cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s: %s [%s .. %s]</title></circle>'
                    % (x, y, color, esc(name), fmt(p[0]), fmt(p[1]), fmt(p[2])))
            prev = (x, y)
        yy = top + ph + 62
        svg.line(lx, yy - 4, lx + 18, yy - 4, color, 2)
        svg.text(lx + 22, yy, name, 'start', 11)
        lx += 40 + 7 * len(name)
    if note:
        svg.text(10, h - 10, note, 'start', 10, '#555')
    svg.save(path)
    return True


def rowmap(res):
    return {r['id']: r for r in (res or {}).get('rows', [])}


def med3(row, key='gbps', scale=1.0):
    if not row:
        return None
    s = row.get('summary', {}).get(key) if key in row.get('summary', {}) else row.get(key)
    if not s:
        return None
    return (s['median'] * scale, s['min'] * scale, s['max'] * scale)


def plot_all(net, netns_list, dev, out):
    made = []
    R = rowmap(net)
    # 1. throughput vs baselines
    order = [('iperf3', 'iperf3 -l 1M (no file)'), ('cat-nc', 'cat | nc'), ('socat', 'socat -b 1M'),
             ('socat-tls', 'socat OPENSSL (TLS 1.3)'), ('random/plain/uring/L1', 'vmstream plain, 1 lane'),
             ('random/plain/posix/L1', 'vmstream plain, posix, 1 lane'),
             ('random/aes/uring/L1', 'vmstream PSK+AES-GCM, 1 lane'),
             ('random/aes/uring/L4', 'vmstream PSK+AES-GCM, 4 lanes'),
             ('zstd-nc:random', 'zstd -1 -T2 | nc (random)'),
             ('zstd-openssl-nc:random', 'zstd -1 | openssl | nc (random)'),
             ('random/auto+aes/uring/L1', 'vmstream auto+AES, random'),
             ('zstd-nc:mixed', 'zstd -1 -T2 | nc (mixed)'), ('zstd-openssl-nc:mixed', 'zstd -1 | openssl | nc (mixed)'),
             ('mixed/plain/uring/L1', 'vmstream plain, mixed'),
             ('mixed/aes/uring/L1', 'vmstream PSK+AES-GCM, mixed'),
             ('mixed/auto+aes/uring/L1', 'vmstream auto+AES, 1 lane, mixed'),
             ('mixed/auto+aes/uring/L2', 'vmstream auto+AES, 2 lanes, mixed')]
    items = []
    for rid, label in order:
        r = R.get(rid)
        if not r:
            continue
        m = med3(r)
        items.append((label, m and m[0], m and m[1], m and m[2],
                      COLORS['baseline'] if r['kind'] == 'baseline' else COLORS.get(r['group'], COLORS['vmstream']), ''))
    if net and hbars(os.path.join(out, 'throughput-baselines.svg'),
                     'Loopback: raw-data throughput, vmstream vs baselines (median, min..max)', items,
                     'GB/s of original data (10^9 B/s)',
                     note='%s; %d runs of %s per row; grey = baselines' % (
                         net['created'], net['config']['runs'], sizestr(net['config']['size']))):
        made.append('throughput-baselines.svg')
    # 2. lanes
    lanes = [1, 2, 4]
    series = []
    for base, name, color in (('random/plain/uring', 'plain, random', SERIES[0]), ('random/aes/uring', 'PSK+AES, random', SERIES[1]),
                              ('mixed/auto+aes/uring', 'PSK+auto+AES, mixed', SERIES[2])):
        pts = [med3(R.get('%s/L%d' % (base, n))) for n in lanes]
        if any(pts):
            series.append((name, color, pts))
    hl = []
    if med3(R.get('iperf3')):
        hl.append((med3(R.get('iperf3'))[0], 'iperf3', COLORS['iperf3']))
    if med3(R.get('socat-tls')):
        hl.append((med3(R.get('socat-tls'))[0], 'socat TLS', '#d62728'))
    if net and lines_chart(os.path.join(out, 'throughput-lanes.svg'), 'Loopback: throughput vs lanes (--lanes)',
                           [str(n) for n in lanes], series, 'GB/s of original data', 'TCP lanes', hl,
                           note='%s; median and min..max of %d runs' % (net['created'], net['config']['runs'])):
        made.append('throughput-lanes.svg')
    # 3. chunk size
    chunks = [sizestr(c) for c in (net or {}).get('config', {}).get('chunks', [])]
    series = []
    for main, name, color in (('random/plain/uring/L1', 'plain, random', SERIES[0]),
                              ('mixed/auto+aes/uring/L1', 'PSK+auto+AES, mixed', SERIES[2])):
        pts = [med3(R.get(main if c == '1M' else '%s/chunk%s' % (main, c))) for c in chunks]
        if any(pts):
            series.append((name, color, pts))
    if net and lines_chart(os.path.join(out, 'throughput-chunk.svg'), 'Loopback: throughput vs --chunk-size (1 lane)',
                           chunks, series, 'GB/s of original data', 'chunk size (bytes per record)', hl[:1],
                           note='%s; median and min..max of %d runs' % (net['created'], net['config']['runs'])):
        made.append('throughput-chunk.svg')
    # 4. RSS vs stream size
    sizes = (net or {}).get('config', {}).get('rss_sizes', [])
    series = []
    for side, name, color in (('send', 'sender (vmstream-send)', COLORS['send']), ('recv', 'receiver (vmstream-recv)', COLORS['recv'])):
        pts = [med3(R.get('mixed/auto+aes/rss%s' % sizestr(s)), '%s_rss_kib' % side, 1 / 1024) for s in sizes]
        if any(pts):
            series.append((name, color, pts))
    if net and lines_chart(os.path.join(out, 'rss-stream-size.svg'),
                           'Peak RSS vs stream size (--memory 64M, PSK + auto + AES)', [sizestr(s) for s in sizes],
                           series, 'peak RSS (MiB, /usr/bin/time %M)', 'stream size (generated on the fly)',
                           [(96, 'limit: memory + 32 MiB', COLORS['limit'])],
                           note='%s; median and min..max of %d runs' % (net['created'], net['config']['runs'])):
        made.append('rss-stream-size.svg')
    # 5. netns
    items = []
    for ns in netns_list:
        NR = rowmap(ns)
        mtu = ns['config'].get('mtu') or '?'
        for r in ns['rows']:
            m = med3(r)
            ann = ''
            if r.get('x_shaped'):
                ann = '(x%.2f of shaped)' % r['x_shaped']['median']
            items.append(('MTU %s: %s' % (mtu, r['id'].replace('/auto+aes', ' auto+AES')), m and m[0], m and m[1],
                          m and m[2], COLORS['baseline'] if r['kind'] == 'baseline' else COLORS['auto'], ann))
    if netns_list and hbars(os.path.join(out, 'netns.svg'),
                            'Across a TBF-shaped veth (netns): raw-data throughput', items, 'GB/s of original data',
                            note='%s; shaped rates 1 Gbit/s = 0.125 GB/s, 10 Gbit/s = 1.25 GB/s' % netns_list[0]['created'],
                            ref_lines=[(0.125, '1 Gbit/s', COLORS['shaped']), (1.25, '10 Gbit/s', COLORS['shaped'])]):
        made.append('netns.svg')
    # 6. device
    if dev and dev.get('throughput'):
        items = []
        for r in dev['throughput']['rows']:
            g = r['gbps']
            items.append((r['id'], g['median'], g['min'], g['max'], SERIES[0] if r['id'].startswith('sim') else COLORS['baseline'], ''))
        if hbars(os.path.join(out, 'device.svg'), 'Stop-copy throughput: sim device vs the same bytes from memory', items,
                 'GB/s', note='bench_device, %s bytes, %d runs' % (sizestr(dev['throughput']['bytes']), dev['runs'])):
            made.append('device.svg')
    return made


def sizestr(n):
    for unit, sh in (('G', 30), ('M', 20), ('K', 10)):
        if n >= (1 << sh) and n % (1 << sh) == 0:
            return '%d%s' % (n >> sh, unit)
    return str(n)


# ---- the document -----------------------------------------------------------------------------
def g(st, f='%.3f', scale=1.0):
    return (f % (st['median'] * scale)) if st else '–'


def mm(st, f='%.2f', scale=1.0):
    return ('%s–%s' % (f % (st['min'] * scale), f % (st['max'] * scale))) if st else ''


def cell(s):
    return str(s).replace('|', '\\|')


def rel(path, doc):
    return os.path.relpath(path, os.path.dirname(os.path.abspath(doc)))


def doc(net, netns_list, dev, stages_txt, analysis, made, out_dir, docpath, files):
    L = []
    A = L.append
    m = (net or (netns_list[0] if netns_list else {})).get('machine', {})
    A('# vmstream performance')
    A('')
    A('Generated by `bench/run_all.sh` (tables and plots from `bench/results/*.json` by `bench/plot.py --doc`); '
      'do not edit by hand: edit `bench/results/analysis.md` (quoted below) or the scripts.')
    A('')
    A('Result files: ' + ', '.join('[`%s`](%s)' % (os.path.basename(f), rel(f, docpath)) for f in files if f) + '.')
    A('')
    A('## Machine and noise')
    A('')
    A('| | |')
    A('| --- | --- |')
    A('| CPU | %s, %s cores (`nproc`) |' % (m.get('cpu_model', '?'), m.get('nproc', '?')))
    A('| kernel | %s |' % m.get('kernel', '?'))
    A('| memory | %s GiB |' % m.get('mem_gib', '?'))
    A('| vmstream | %s, git %s |' % (m.get('versions', {}).get('vmstream', '?'), m.get('git', '?')))
    v = m.get('versions', {})
    A('| peers | %s; %s; %s; %s; %s |' % (v.get('iperf3', ''), v.get('socat', ''), v.get('zstd', ''), v.get('openssl', ''), v.get('nc', '')))
    if net:
        oth = [r['summary']['other_cores']['median'] for r in net['rows'] if 'other_cores' in r.get('summary', {})]
        oth.sort()
        A('| load average | %s at the start of the loopback suite, %s at its end |' % (
            ' '.join(m.get('loadavg_start', [])), ' '.join(m.get('loadavg_end', []))))
        if oth:
            A('| other processes | median over rows of the CPU the rest of the machine used during a row: %.2f cores '
              '(rows range %.2f–%.2f) |' % (oth[len(oth) // 2], oth[0], oth[-1]))
    A('')
    A('The machine has two cores and is shared with other engineers\' builds and tests that ran during these '
      'measurements: absolute numbers move by ±25 % or more between runs. Every ratio below is therefore taken '
      'between a row and its baseline *of the same run* (runs alternate all rows, in an order rotated per run), '
      'and the median over the runs is reported with the range (min–max) of the per-run values. "other" is the '
      'CPU (in cores) that processes other than the measured ones used while a row ran (from `/proc/stat`; it '
      'includes softirq time the kernel did not charge to the measured processes).')
    A('')
    # targets
    A('## Targets')
    A('')
    A('| target | measured (median, min–max) | goal | verdict |')
    A('| --- | --- | --- | --- |')
    alltargets = []
    if net:
        alltargets += [('loopback', t) for t in net['targets']]
    for ns in netns_list:
        alltargets += [('netns MTU %s' % ns['config'].get('mtu'), t) for t in ns['targets']]
    for where, t in alltargets:
        v = t['value']
        f = '%.4f' if t['unit'] == 'x' else '%.1f'
        A('| %s: %s | %s%s (%s) | %s %g%s | %s |' % (
            where, cell(t['label']), 'x' if t['unit'] == 'x' else '', g(v, f), mm(v, f), '≥' if t['op'] == '>=' else '≤', t['goal'],
            '' if t['unit'] == 'x' else ' ' + t['unit'], '–' if t['met'] is None else ('**met**' if t['met'] else '**not met**')))
    if dev:
        d = dev.get('downtime')
        if d:
            for e in d.get('engines', []):
                pd = e['per_device_us']
                A('| device: added downtime per %d-byte device (%d devices + 1 x %s), --io %s | %.1f us (%.1f–%.1f) | ≤ 100 us | %s |' % (
                    d['small_bytes'], d['small'], sizestr(d['big_bytes']), e['io'], pd['median'], pd['min'], pd['max'],
                    '**met**' if pd['median'] <= 100 else '**not met**'))
        t = dev.get('throughput')
        if t:
            for k, lab in (('ratio_aes', 'PSK + AES-256-GCM'), ('ratio_plain', 'checksummed only')):
                r = t[k]
                A('| device: %s sim stop-copy vs memory, %s | x%.3f (%.3f–%.3f) | ≥ 0.9 | %s |' % (
                    sizestr(t['bytes']), lab, r['median'], r['min'], r['max'], '**met**' if r['median'] >= 0.9 else '**not met**'))
    A('')
    if analysis:
        A('## Analysis: causes of missed targets and what would close them')
        A('')
        A(analysis.strip())
        A('')
    # loopback
    if net:
        c = net['config']
        A('## Loopback (bench/net.sh)')
        A('')
        A('Run finished %s; %d runs; %s files of `vmstream-bench gen --profile random|mixed` in tmpfs (page cache), receiver '
          'writes to /dev/null; `iperf3 -t %d`. GB/s = 10^9 bytes of original data per second (wall time from '
          'starting the sender, the receiver already listening, until both ended). CPU s/GB: CPU seconds (user + '
          'sys) per 10^9 raw bytes, of each side; vmstream from `--json` `cpu_user_s + cpu_sys_s`, others from '
          'the rusage of the process tree. RSS: `/usr/bin/time -f %%M` of each side (MiB). Ratios: per run, then '
          'median (min–max).' % (net['created'], c['runs'], sizestr(c['size']), c['iperf_seconds']))
        A('')
        A('Reproduce: `%s` (or `bench/run_all.sh`). Wall time of the suite: %.0f s (%d failed measurements).' % (
            c.get('command', 'bench/net.sh'), net.get('wall_s', 0), net.get('failures', 0)))
        A('')
        A('| row | data | GB/s | min–max | send CPU s/GB | recv CPU s/GB | baseline | x baseline (min–max) | 2nd baseline | x 2nd | x ref row | RSS send/recv MiB | other |')
        A('| --- | --- | ---: | --- | ---: | ---: | --- | --- | --- | --- | --- | --- | ---: |')
        for r in net['rows']:
            if r['kind'] == 'cost':
                continue
            s = r['summary']
            xb, xb2 = r.get('x_base'), r.get('x_base2')
            xr = r.get('x_ref')
            A('| %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |' % (
                '`%s`' % r['id'], ' (%d failed)' % r['failed'] if r.get('failed') else '', r['profile'], g(s.get('gbps')), mm(s.get('gbps')),
                g(s.get('send_cpu_s_per_gb'), '%.2f'), g(s.get('recv_cpu_s_per_gb'), '%.2f'), r.get('base') or '',
                (g(xb) + ' (' + mm(xb) + ')') if xb else '', r.get('base2') or '', g(xb2) if xb2 else '',
                (g(xr) + ' of `' + r['ref'] + '`') if xr else '',
                g(s.get('send_rss_kib'), '%.0f', 1 / 1024), g(s.get('recv_rss_kib'), '%.0f', 1 / 1024), g(s.get('other_cores'), '%.2f')))
        A('')
        A('What the rows run:')
        A('')
        for r in net['rows']:
            if r['kind'] == 'baseline':
                A('- `%s`: %s%s' % (r['id'], r['label'], (' — `%s`' % r['params']['cmd'].replace('set -o pipefail; ', '')) if r['params'].get('cmd') else ''))
        A('- vmstream rows: `vmstream-recv --listen 127.0.0.1:0 --port-file F [--psk-file K] --io ENGINE /dev/null` and '
          '`vmstream-send --to 127.0.0.1:PORT --lanes N --compress C --encrypt E --io ENGINE [--psk-file K] '
          '[--chunk-size S] [--threads 0] FILE` (both `--quiet --json`). "plain" = no PSK (unauthenticated loopback session, '
          'records checksummed, not encrypted); "aes" = PSK session, AES-256-GCM; "auto+aes" = `--compress auto` too. '
          'The chunk rows for 16M chunks pass `--memory 128M` to both ends (64M is too small for 16 MiB records '
          'with compression + cipher). The `rss` rows send `vmstream-bench gen --profile mixed --size S | '
          'vmstream-send ... -` with `--memory 64M` on both ends.')
        A('')
        for f, cap in (('throughput-baselines.svg', 'throughput vs baselines'), ('throughput-lanes.svg', 'throughput vs lanes'),
                       ('throughput-chunk.svg', 'throughput vs chunk size'), ('rss-stream-size.svg', 'peak RSS vs stream size')):
            if f in made:
                A('![%s](%s)' % (cap, rel(os.path.join(out_dir, f), docpath)))
                A('')
        if net.get('costs'):
            A('### Per-byte costs (same runs) and the CPU ceiling')
            A('')
            A('| cost | CPU s/GB (one core) | GB/s |')
            A('| --- | ---: | ---: |')
            for k, v in net['costs'].items():
                if 'compress_cpu_s_per_gb' in v:
                    A('| %s, compress (ratio %s) | %s | %s |' % (k, g(v.get('ratio'), '%.2f'), g(v['compress_cpu_s_per_gb']), g(v['compress_gbps'])))
                    A('| %s, decompress | %s | %s |' % (k, g(v['decompress_cpu_s_per_gb']), g(v['decompress_gbps'])))
                elif 'cpu_s_per_gb' in v:
                    A('| %s | %s | %s |' % (k, g(v['cpu_s_per_gb']), g(v.get('gbps'))))
                else:
                    A('| %s: CPU of both iperf3 ends per GB moved | %s | |' % (k, g(v)))
            A('')
            A('Ceiling model (per run, from that run\'s costs): CPU s/GB = file read (`cat`) + TCP copy (iperf3, both '
              'ends) x wire/raw + 2 x XXH3 (`xxhsum -b`, hot cache: optimistic) + [2 x AES-256-GCM (`openssl speed`) x '
              'wire/raw] + [f x zstd -1 compress + decompress (`zstd -b1`)], where f = 1 for fixed zstd and, for `auto`, '
              'the fraction of the bytes it compressed, estimated from the row\'s wire/raw and zstd -1\'s ratio (0 on '
              'random data; auto also uses other levels than 1, so this is an estimate); ceiling = 2 cores / that. '
              '"measured" is the CPU both vmstream processes actually used per GB.')
            A('')
            A('| row | ceiling GB/s | measured / ceiling | model CPU s/GB | measured CPU s/GB |')
            A('| --- | ---: | ---: | ---: | ---: |')
            for cc in net.get('ceilings', []):
                A('| `%s` | %s | %s (%s) | %s | %s |' % (cc['id'], g(cc['ceiling_gbps']), g(cc['near'], '%.2f'), mm(cc['near']),
                                                        g(cc['model_cpu_s_per_gb'], '%.2f'), g(cc['measured_cpu_s_per_gb'], '%.2f')))
            A('')
    # netns
    if netns_list:
        A('## Across a shaped link (bench/netns.sh)')
        A('')
        ns0 = netns_list[0]
        A('Two network namespaces (`vmsA` 10.77.0.1, `vmsB` 10.77.0.2) joined by a veth pair; `tc qdisc replace dev '
          'vmsA0 root tbf rate R burst B latency 50ms` on the sender\'s egress (bursts: %s); iperf3 -l 1M -t %d and '
          'vmstream with `--psk-file` (TLS 1.3 PSK, AES-256-GCM) and `--compress auto`, 1 lane, bytes per transfer: %s. '
          'TBF counts whole frames, so TCP payload can use at most 1448/1514 = 0.956 of the rate at MTU 1500 and '
          '8948/9014 = 0.993 at MTU 9000; iperf3 over the same link is the practical ceiling.' % (
              ns0['config'].get('bursts'), ns0['config']['iperf_seconds'], ns0['config'].get('rate_sizes')))
        A('')
        A('Reproduce: `bench/netns.sh` (root; `MTUS=1500 RATES=1gbit bench/netns.sh --runs 3` for a subset). Run '
          'finished %s, %d runs; wall time %s s.' % (ns0['created'], ns0['config']['runs'],
                                                    ' + '.join('%.0f' % n.get('wall_s', 0) for n in netns_list)))
        A('')
        A('| MTU | row | data | GB/s | min–max | x shaped rate (min–max) | x iperf3 same link | send CPU s/GB | recv CPU s/GB | other |')
        A('| --- | --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: |')
        for ns in netns_list:
            for r in ns['rows']:
                s = r['summary']
                xs, xb = r.get('x_shaped'), r.get('x_base')
                A('| %s | `%s`%s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
                    ns['config'].get('mtu'), r['id'], ' (%d failed)' % r['failed'] if r.get('failed') else '', r['profile'],
                    g(s.get('gbps')), mm(s.get('gbps')), (g(xs) + ' (' + mm(xs) + ')') if xs else '',
                    (g(xb) + ' (' + mm(xb) + ')') if xb else '', g(s.get('send_cpu_s_per_gb'), '%.2f'),
                    g(s.get('recv_cpu_s_per_gb'), '%.2f'), g(s.get('other_cores'), '%.2f')))
        A('')
        if 'netns.svg' in made:
            A('![netns](%s)' % rel(os.path.join(out_dir, 'netns.svg'), docpath))
            A('')
    # device
    if dev:
        A('## Devices: downtime and stop-copy throughput (bench/bench_device.c)')
        A('')
        A('Reproduce: `bench/device.sh` (builds and runs `bench_device --runs 5 --json ...`). The source is the '
          'benchmark process, the destination a forked child; a loopback TLS 1.3 PSK session is connected before '
          'the switchover; `vms_migrate_send` with `VMS_MIGRATE_F_NO_PRECOPY`, no-op stop/resume hooks.')
        A('')
        d = dev.get('downtime')
        if d:
            A('(a) %d runs, each migrating 1 sim device of %s (mixed) + %d sim devices of %d bytes (random) and the '
              'big device alone, with `--io uring` (the default here) and `--io posix` (`vms_net_opts.io`), the four '
              'in an order rotated per run; compress %s, %s; destination devices are sim devices '
              'that validate every byte. Downtime = report `downtime_ms` (stop_vm until the destination acknowledged '
              'every device loaded); per-device = the report\'s per-device `downtime_ms` (stop until that device\'s '
              'state was in the stream).' % (d.get('runs', dev['runs']), sizestr(d['big_bytes']), d['small'], d['small_bytes'],
                                              d.get('compress', 'auto'), d.get('cipher', 'aes-256-gcm')))
            A('')
            engines = d.get('engines', [])
            A('| measure | ' + ' | '.join('--io %s: median (min–max)' % e['io'] for e in engines) + ' |')
            A('| --- |' + ' --- |' * len(engines))
            for k, lab, u in (('with_ms', 'downtime, 1 big + %d small' % d['small'], 'ms'), ('without_ms', 'downtime, 1 big alone', 'ms'),
                              ('per_device_us', 'added downtime per small device ((with - without) / %d, per run)' % d['small'], 'us'),
                              ('big_dev_ms', 'report: big device in the stream after', 'ms'),
                              ('small_dev_median_ms', 'report: small devices in the stream after (median of a run)', 'ms'),
                              ('small_dev_max_ms', 'report: last small device in the stream after', 'ms')):
                A('| %s | ' % lab + ' | '.join('%.3f %s (%.3f–%.3f)' % (e[k]['median'], u, e[k]['min'], e[k]['max'])
                                               for e in engines) + ' |')
            A('')
        t = dev.get('throughput')
        if t:
            A('(b) one %s sim device (profile random, image generated by the device\'s producer thread behind its '
              'data_fd pipe) vs the same bytes from a `vms_device_open_mem` buffer (read out of a sim device before '
              'the runs); compress none; destination: a discarding device (the same in both cases). Throughput = '
              'bytes / downtime (stop until acknowledged).' % sizestr(t['bytes']))
            A('')
            A('| source | GB/s | min–max | source CPU s/GB | destination CPU s/GB |')
            A('| --- | ---: | --- | ---: | ---: |')
            for r in t['rows']:
                A('| %s | %.3f | %.3f–%.3f | %.2f | %.2f |' % (cell(r['label']), r['gbps']['median'], r['gbps']['min'], r['gbps']['max'],
                                                            r['send_cpu_s_per_gb']['median'], r['recv_cpu_s_per_gb']['median']))
            A('')
            if 'device.svg' in made:
                A('![device](%s)' % rel(os.path.join(out_dir, 'device.svg'), docpath))
                A('')
    if stages_txt:
        A('## In-memory stages (bench/stages.sh, vmstream-bench stages)')
        A('')
        A('Another engineer\'s benchmark, run by `bench/run_all.sh` in the same session; its own table: [`%s`](%s). '
          'Its targets and noise lines:' % (os.path.basename(stages_txt), rel(stages_txt, docpath)))
        A('')
        A('```')
        txt = open(stages_txt).read()
        i = txt.find('== Issue 4 targets')
        A((txt[i:] if i >= 0 else txt[-3000:]).rstrip())
        A('```')
        A('')
    A('## How to reproduce')
    A('')
    A('```sh')
    A('bench/run_all.sh                 # build (Release, build-bench/), stages, net, netns, device, plots, this file')
    A('bench/run_all.sh --quick         # smoke: tiny sizes, 1 run, results in a temporary directory')
    A('bench/net.sh --runs 5 --size 2G  # loopback suite only;   bench/net.sh --list shows its rows')
    A('bench/netns.sh                   # shaped-link suite (root)')
    A('bench/device.sh                  # Issue 6 device bench')
    A('bench/plot.py --doc docs/PERFORMANCE.md   # plots + this file from bench/results/')
    A('```')
    A('')
    with open(docpath, 'w') as fh:
        fh.write('\n'.join(L) + '\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--results', default=os.path.join(HERE, 'results'))
    ap.add_argument('--out', help='where the SVGs go (default: --results)')
    ap.add_argument('--net')
    ap.add_argument('--netns', nargs='*')
    ap.add_argument('--device')
    ap.add_argument('--stages')
    ap.add_argument('--doc')
    a = ap.parse_args()
    out = a.out or a.results
    os.makedirs(out, exist_ok=True)
    netf = a.net or newest(os.path.join(a.results, 'net-*.json'))
    if a.netns is not None:
        nsf = a.netns
    else:
        last = newest(os.path.join(a.results, 'netns-mtu*-*.json'))
        nsf = []
        if last:
            stamp = re.sub(r'^netns-mtu\d+-', '', os.path.basename(last))
            nsf = sorted(glob.glob(os.path.join(a.results, 'netns-mtu*-' + stamp)),
                         key=lambda f: int(re.search(r'mtu(\d+)', f).group(1)))
    devf = a.device or newest(os.path.join(a.results, 'device-*.json'))
    stf = a.stages or newest(os.path.join(a.results, 'stages-*.txt'))
    net, dev = load(netf), load(devf)
    netns_list = [x for x in (load(f) for f in nsf) if x]
    made = plot_all(net, netns_list, dev, out)
    for f in made:
        print('plot.py: wrote %s' % os.path.join(out, f))
    if a.doc:
        an = os.path.join(a.results, 'analysis.md')
        analysis = open(an).read() if os.path.exists(an) else ''
        doc(net, netns_list, dev, stf, analysis, made, out, a.doc, [netf] + nsf + [devf, stf])
        print('plot.py: wrote %s' % a.doc)
    return 0


if __name__ == '__main__':
    sys.exit(main())
