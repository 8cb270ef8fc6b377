#!/usr/bin/env python3
"""Regenerate the kubelet comparison data in this folder. See README.md.

    gen.py [cases]        run every input through kubecmp, write cases.json (default)
    gen.py inputs         print the inputs (name, topology, reserved, options, ops) as JSON
    gen.py topologies     rewrite topologies/*.json from kubelet's test source and the sysfs fixtures

kubecmp is the shared tool ../shared/tools/kubecmp (kubelet v1.37.2's CPU manager
static policy as a command); it is not part of this repository. Environment:

    KUBECMP       the built kubecmp binary (default /tmp/kubecmp/kubecmp)
    KUBECMP_DIR   the kubecmp folder, for kubelet_fixture.py / topo_from_sysfs.py
                  (default: ../shared/tools/kubecmp from the project root)
    SYSFS_DIR     the sysfs tarballs (default: ../shared/fixtures/sysfs from the project root)

The output depends only on the topology files and on the inputs built below:
cases are in a fixed order and every object is written with sorted keys.
"""
import json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '../../../..'))  # project root
SHARED = os.path.abspath(os.path.join(ROOT, '../shared'))
KUBECMP = os.environ.get('KUBECMP', '/tmp/kubecmp/kubecmp')
KUBECMP_DIR = os.environ.get('KUBECMP_DIR', os.path.join(SHARED, 'tools/kubecmp'))
SYSFS_DIR = os.environ.get('SYSFS_DIR', os.path.join(SHARED, 'fixtures/sysfs'))
TOPO_DIR = os.path.join(HERE, 'topologies')
KUBERNETES = 'v1.37.2'

FPO = 'full-pcpus-only'
FPO_UNCORE = 'full-pcpus-only,prefer-align-cpus-by-uncorecache'
OPTION_SETS = [FPO, FPO_UNCORE]

# Literal topologies of pkg/kubelet/cm/cpumanager/policy_test.go (k8s.io/kubernetes v1.37.2).
KUBELET_TOPOLOGIES = [
    'topoSingleSocketHT', 'topoDualSocketHT', 'topoDualSocketNoHT', 'topoTripleSocketHT',
    'topoUncoreSingleSocketSMT', 'topoUncoreSingleSocketNoSMT', 'topoUncoreDualSocketNoSMT',
    'topoUncoreSingleSocketMultiNuma', 'topoQuadSocketFourWayHT',
    'topoDualSocketMultiNumaPerSocketHT', 'topoDualSocketMultiNumaPerSocketHTType2',
    'fakeTopoMultiSocketDualSocketPerNumaHT', 'topoDualSocketMultiNumaPerSocketHTLarge',
    'topoDualSocketSingleNumaPerSocketSMTUncore', 'topoSingleSocketSingleNumaPerSocketSMTSmallUncore',
    'topoSingleSocketSingleNumaPerSocketNoSMTSmallUncore', 'topoSmallDualSocketSingleNumaPerSocketNoSMTUncore',
    'topoSmallSingleSocketSingleNumaPerSocketNoSMTUncore', 'topoLargeSingleSocketSingleNumaPerSocketSMTUncore',
    'topoDualSocketSubNumaPerSocketHTMonolithicUncore', 'topoSingleSocketSingleNumaPerSocketPCoreHTMonolithicUncore',
    'topoLargeSingleSocketSingleNumaPerSocketUncore', 'topoSingleSocketSingleNumaPerSocketUncore',
]
# kubelet's literal repeats CoreID 0-95 on both sockets (no SMT, header says 192 cores);
# kubecmp refuses repeated core ids, so it is stored with core = cpu under this name.
REPAIRED = {'topoDualSocketMultiNumaPerSocketUncoreCoreFix': 'topoDualSocketMultiNumaPerSocketUncore'}
SYSFS = ['amd-ryzen-1600-2ccx-12t', 'desktop-10c-20t', 'offline-cpus-4t', 'server-8numa-112t',
         'xeon-2s-4numa-80t', 'xeon-2s-6numa-112t', 'xeon-4s-144t']


# ---- cpu lists ---------------------------------------------------------------

def parse_list(text):
    s = set()
    for p in filter(None, text.split(',')):
        a, _, b = p.partition('-')
        s.update(range(int(a), int(b or a) + 1))
    return s


def fmt_list(cpus):
    out, cpus = [], sorted(cpus)
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        out.append(str(cpus[i]) if i == j else '%d-%d' % (cpus[i], cpus[j]))
        i = j + 1
    return ','.join(out)


# ---- topologies ----------------------------------------------------------------

def write_topology(name, cpus):
    cpus = sorted(cpus, key=lambda c: c['cpu'])
    lines = [json.dumps({k: c[k] for k in ('cpu', 'core', 'socket', 'numa', 'l3') if k in c}, sort_keys=True)
             for c in cpus]
    with open(os.path.join(TOPO_DIR, name + '.json'), 'w') as f:
        f.write('{"cpus": [\n' + ',\n'.join(lines) + '\n]}\n')


def make_topologies():
    os.makedirs(TOPO_DIR, exist_ok=True)
    fixture = os.path.join(KUBECMP_DIR, 'kubelet_fixture.py')
    for name in KUBELET_TOPOLOGIES:
        out = subprocess.run([sys.executable, fixture, name], capture_output=True, text=True, check=True)
        write_topology(name, json.loads(out.stdout)['cpus'])
    for name, src in REPAIRED.items():
        out = subprocess.run([sys.executable, fixture, src], capture_output=True, text=True, check=True)
        cpus = json.loads(out.stdout)['cpus']
        for c in cpus:
            c['core'] = c['cpu']
        write_topology(name, cpus)
    conv = os.path.join(KUBECMP_DIR, 'topo_from_sysfs.py')
    for name in SYSFS:
        out = subprocess.run([sys.executable, conv, os.path.join(SYSFS_DIR, name + '.tar.gz')],
                             capture_output=True, text=True, check=True)
        write_topology('sysfs-' + name, json.loads(out.stdout)['cpus'])


class Topo:
    def __init__(self, name):
        self.name = name
        self.cpus = json.load(open(os.path.join(TOPO_DIR, name + '.json')))['cpus']
        self.n = len(self.cpus)
        self.cores = self.groups('core')
        self.t = max(len(v) for v in self.cores.values())  # threads per core (largest core)

    def groups(self, key):
        g = {}
        for c in self.cpus:
            g.setdefault(c.get(key, c['socket'] if key == 'l3' else c['cpu']), set()).add(c['cpu'])
        return g

    def partition(self, key):
        return sorted(sorted(v) for v in self.groups(key).values())

    def core_of(self, cpu):
        return next(v for v in self.cores.values() if cpu in v)


# ---- inputs ----------------------------------------------------------------------

def req(*ns):
    return [{'request': n} for n in ns]


def frees(*idx):
    return [{'free': i} for i in idx]


def level_fit(sizes_free, t):
    """Requests that each just fit one group: a whole free group first, then the
    groups holding reserved CPUs (their free CPUs rounded down to whole cores)."""
    full = [s for s, f in sizes_free if s == f]
    part = [f - f % t for s, f in sizes_free if s != f and f - f % t > 0]
    full.sort(reverse=True)
    ops = full[:1] + part + full[1:]
    return req(*ops) + req(t)  # the last one finds the machine full (or a leftover)


def frag(free, chunk, t, limit):
    """Allocate `chunk` CPUs up to `limit` times, free every other one, then ask
    for a double chunk, a chunk, a core and a triple chunk."""
    n = min(limit, free // chunk)
    if n < 2:
        return None
    return req(*[chunk] * n) + frees(*range(1, n, 2)) + req(2 * chunk, chunk, t, 3 * chunk)


def sequences(tp, reserved):
    """The generated sequences for one topology and reserved set: (seq name, ops)."""
    t, free = tp.t, tp.n - len(reserved)
    seqs = []
    # whole-core ladder t, 2t, 3t, ... then exactly the rest, then one more core (fails)
    ops, cum, k = [], 0, 1
    while cum + k * t <= free:
        ops.append(k * t)
        cum += k * t
        k += 1
    if free - cum > 0:
        ops.append(free - cum)
    ops.append(t)
    seqs.append(('ladder', req(*ops)))
    # odd / not-whole-core requests between whole-core ones
    odd = [1, 3, t, 5, 2 * t + 1, 7] + ([2, 6, 4 * t] if t >= 4 else [2 * t])
    seqs.append(('odd', req(*odd)))
    # requests that just fit one NUMA node / L3 group / socket, each level once
    seen = [tp.partition('cpu')]
    for level in ('numa', 'socket', 'l3'):
        part = tp.partition(level)
        if len(part) < 2 or part in seen:
            continue
        seen.append(part)
        seqs.append(('fit-' + level, level_fit([(len(g), len(set(g) - reserved)) for g in part], t)))
    # requests spanning sockets / NUMA nodes / L3 groups on a fresh node, a free, then the rest
    span = sorted({max(len(g) for g in tp.partition(lv)) + t for lv in ('socket', 'numa', 'l3')
                   if len(tp.partition(lv)) > 1}, reverse=True)
    span = [s for s in span if s <= free]
    if span:
        ops = req(*span) + frees(0)
        rest = free - sum(span[1:])
        ops += req(rest) + req(t)
        seqs.append(('span', ops))
    # fragmentation: small chunks, and half L3 groups / half NUMA nodes
    f = frag(free, 2 * t, t, 8)
    if f:
        seqs.append(('frag-cores', f))
    for level in ('l3', 'numa'):
        part = tp.partition(level)
        if len(part) < 2:
            continue
        half = (max(len(g) for g in part) // 2) // t * t
        if half >= t and half != 2 * t:
            f = frag(free, half, t, 24)
            if f:
                seqs.append(('frag-' + level, f))
    # one core at a time until the machine is full, then a free and some more
    n = free // t
    ops = req(*[t] * (n + 1)) + frees(*sorted({0, n // 2})) + req(2 * t, t, t)
    seqs.append(('fill', ops))
    return seqs


def default_reserved(tp):
    return tp.core_of(min(c['cpu'] for c in tp.cpus))  # all threads of the lowest CPU's core


def split_reserved(tp):
    """Reserved lists that split cores: the lowest CPU alone, and the lowest CPU
    plus the lowest CPU of another socket (or NUMA node), each without siblings."""
    first = min(c['cpu'] for c in tp.cpus)
    out = [{first}]
    for level in ('socket', 'numa'):
        others = [min(g) for g in tp.partition(level) if first not in g]
        if others:
            out.append({first, min(others)})
            break
    return out


# Cases of kubelet's own unit tests (as replayed by kubecmp's verify.py):
# (short name, source, topology, reserved, options, initial shared pool or None, requests).
# --num-reserved N is written as the explicit list kubelet picks (same result).
KUBELET_TEST_CASES = [
    ('ManyCores-AllCPUs', 'policy_static_test.go TestStaticPolicyAdd smtalign "GuPodManyCores, topoDualSocketHT, ExpectAllocAllCPUs"',
     'topoDualSocketHT', '0,6', FPO, None, [10]),
    ('ManyCores-AutoReserve-AllCPUs', 'policy_static_test.go TestStaticPolicyAdd smtalign "GuPodManyCores, topoDualSocketHT, AutoReserve, ExpectAllocAllCPUs" (num-reserved 2 = 0,6)',
     'topoDualSocketHT', '0,6', FPO, None, [10]),
    ('ManyCores-NotEnoughAvailable', 'policy_static_test.go TestStaticPolicyAdd smtalign "GuPodManyCores, DualSocketHT, NotEnoughAvailable, NoAlloc"',
     'topoDualSocketHT', '0,1,6,7', FPO, None, [10]),
    ('MultipleCores-ThreeCores', 'policy_static_test.go TestStaticPolicyAdd "GuPodMultipleCores, DualSocketHT, ExpectAllocThreeCores" (num-reserved 1 = 0)',
     'topoDualSocketHT', '0', '', '0,2-4,6-11', [6]),
    ('MultipleCores-OneSocketOneCore', 'policy_static_test.go TestStaticPolicyAdd "GuPodMultipleCores, DualSocketHT, ExpectAllocOneSocketOneCore" (num-reserved 1 = 0)',
     'topoDualSocketHT', '0', '', '0-1,3-11', [8]),
    ('TakeOneCPU-DualSocketHT', 'cpu_assignment_test.go TestTakeByTopologyNUMAPacked "take one cpu from dual socket with HT - core from Socket 0"',
     'topoDualSocketHT', '0,6', '', None, [1]),
    ('TakeOneCPU-DualSocketHT', 'cpu_assignment_test.go TestTakeByTopologyNUMAPacked "take one cpu from dual socket with HT - core from Socket 0", PreferAlignByUncoreCache',
     'topoDualSocketHT', '0,6', 'prefer-align-cpus-by-uncorecache', None, [1]),
    ('SingleCore-OneCPU', 'policy_static_test.go TestStaticPolicyAdd "GuPodSingleCore, SingleSocketHT, ExpectAllocOneCPU" (num-reserved 1 = 0)',
     'topoSingleSocketHT', '0', '', None, [1]),
    ('MultipleUncoreCache-SMT', 'cpu_assignment_test.go TestTakeByTopologyNUMAPacked "take cpus from multiple UncoreCache of single socket - SMT enabled"',
     'topoUncoreSingleSocketSMT', '0,8', 'prefer-align-cpus-by-uncorecache', None, [10]),
    ('BestAvailableUncoreCache-SMT', 'cpu_assignment_test.go TestTakeByTopologyNUMAPacked "take cpus from best available UncoreCache group ... SMT enabled"',
     'topoUncoreSingleSocketSMT', '0,8', 'prefer-align-cpus-by-uncorecache', '2-7,10-15', [6]),
    ('SingleContainerSaturating-OneUncore', 'policy_static_test.go TestStaticPolicyAddWithUncoreAlignment "GuPodSingleContainerSaturating, DualSocketHTUncore, ExpectAllocOneUncore, FullUncoreAvail"',
     'topoDualSocketSingleNumaPerSocketSMTUncore', '0,1,96,97,192,193,288,289', FPO_UNCORE,
     '8-95,104-191,200-287,296-383', [16]),
    ('MainAndSidecar-TwoUncore', 'policy_static_test.go TestStaticPolicyAddWithUncoreAlignment "GuPodMainAndSidecarContainer, DualSocketHTUncore, ExpectAllocTwoUncore" (containers as successive requests)',
     'topoDualSocketSingleNumaPerSocketSMTUncore', '0,1,96,97,192,193,288,289', FPO_UNCORE, None, [12, 2]),
    ('OddOnNoSMT', 'policy_static_test.go TestStaticPolicyAddWithUncoreAlignment "odd integer cpu required on smt-disabled"',
     'topoSmallSingleSocketSingleNumaPerSocketNoSMTUncore', '0-3', FPO_UNCORE, None, [5]),
]
OPT_TAG = {'': 'none', FPO: 'fpo', FPO_UNCORE: 'fpo+uncore', 'prefer-align-cpus-by-uncorecache': 'uncore'}


def inputs():
    topos = sorted(f[:-5] for f in os.listdir(TOPO_DIR) if f.endswith('.json'))
    cases = []
    # (a) kubelet's own test cases, with their own options and with both standard option sets
    seen = set()
    for short, src, topo, reserved, opts, shared, reqs in KUBELET_TEST_CASES:
        for o in [opts] + [o for o in OPTION_SETS if o != opts]:
            key = (topo, reserved, o, shared, tuple(reqs))
            if key in seen and o != opts:
                continue  # the same input is already there under another kubelet test
            seen.add(key)
            c = {'name': '%s/kubelet-test/%s/%s' % (topo, short, OPT_TAG[o]), 'topology': topo,
                 'reserved': reserved, 'options': o, 'ops': req(*reqs),
                 'source': 'kubelet ' + src + ('' if o == opts else ' (options changed to %s)' % o)}
            if shared:
                c['initial_shared'] = shared
            cases.append(c)
    # (b) generated sequences
    for topo in topos:
        tp = Topo(topo)
        variants = [('', default_reserved(tp), 'reserved = the lowest CPU\'s whole core')]
        if tp.t > 1:
            for i, r in enumerate(split_reserved(tp)):
                variants.append(('split%d-' % (i + 1), r, 'reserved splits %d core(s)' % len(r)))
        for prefix, reserved, note in variants:
            for seq, ops in sequences(tp, reserved):
                if prefix and seq not in ('ladder', 'fill', 'odd'):
                    continue
                for o in OPTION_SETS:
                    cases.append({'name': '%s/%s%s/%s' % (topo, prefix, seq, OPT_TAG[o]), 'topology': topo,
                                  'reserved': fmt_list(reserved), 'options': o, 'ops': ops,
                                  'source': 'generated: %s; %s' % (seq, note)})
    names = [c['name'] for c in cases]
    assert len(names) == len(set(names)), 'duplicate case names'
    return cases


# ---- running kubecmp ------------------------------------------------------------

def run(case):
    cmd = [KUBECMP, '--topology', os.path.join(TOPO_DIR, case['topology'] + '.json'),
           '--reserved', case['reserved']]
    if case['options']:
        cmd += ['--options', case['options']]
    if case.get('initial_shared'):
        cmd += ['--shared', case['initial_shared']]
    cmd += ['free:%d' % op['free'] if 'free' in op else str(op['request']) for op in case['ops']]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit('%s: %s\n%s' % (case['name'], ' '.join(cmd), p.stderr))
    out = json.loads(p.stdout)
    if out['kubernetes'] != KUBERNETES:
        raise SystemExit('%s: kubecmp links kubernetes %s, want %s' % (case['name'], out['kubernetes'], KUBERNETES))
    if not case.get('initial_shared') and parse_list(out['reserved']) != parse_list(case['reserved']):
        raise SystemExit('%s: kubecmp reserved %s, asked %s' % (case['name'], out['reserved'], case['reserved']))
    res = dict(case)
    res['kubelet'] = out['allocations']
    res['shared'] = out['shared']
    anomalies = check(case, out['allocations'])
    if anomalies:
        res['kubelet_anomalies'] = anomalies
    return res


def check(case, allocs):
    """Replay kubelet's answers and report any that hand out a CPU that is not
    free at that point (reserved, held, or given to an earlier live allocation)
    or whose size differs from the request."""
    cpus = {c['cpu'] for c in Topo(case['topology']).cpus}
    free = (parse_list(case['initial_shared']) if case.get('initial_shared') else cpus) - parse_list(case['reserved'])
    holder, live, notes = {}, [], []
    for i, (op, out) in enumerate(zip(case['ops'], allocs)):
        got = parse_list(out['cpus'])
        if 'free' in op:
            free |= {c for c in got if holder.get(c) == op['free']}
            continue
        idx = len(live)
        live.append(got)
        if out.get('error'):
            continue
        if len(got) != op['request']:
            notes.append('op %d: request %d got %d cpus' % (i, op['request'], len(got)))
        taken = got - free
        if taken:
            owners = sorted({holder[c] for c in taken if c in holder})
            notes.append('op %d: request %d got cpus %s that were not free (%s)' % (
                i, op['request'], fmt_list(taken),
                'already assigned to request #%s' % ','.join(map(str, owners)) if owners else 'reserved or held'))
        for c in got:
            holder[c] = idx
        free -= got
    return notes


def dump_case(c):
    lines = []
    for k in sorted(c):
        v = c[k]
        if isinstance(v, list):
            inner = ',\n'.join('   ' + json.dumps(x, sort_keys=True) for x in v)
            lines.append('  %s: [\n%s\n  ]' % (json.dumps(k), inner) if v else '  %s: []' % json.dumps(k))
        else:
            lines.append('  %s: %s' % (json.dumps(k), json.dumps(v, sort_keys=True)))
    return ' {\n' + ',\n'.join(lines) + '\n }'


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else 'cases'
    if what == 'topologies':
        make_topologies()
    elif what == 'inputs':
        json.dump(inputs(), sys.stdout, sort_keys=True, indent=1)
        print()
    elif what == 'cases':
        if not os.access(KUBECMP, os.X_OK):
            raise SystemExit('no kubecmp binary at %s (set KUBECMP; see README.md)' % KUBECMP)
        cases = inputs()
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
            results = list(ex.map(run, cases))
        with open(os.path.join(HERE, 'cases.json'), 'w') as f:
            f.write('[\n' + ',\n'.join(dump_case(c) for c in results) + '\n]\n')
        print('%d cases written to cases.json' % len(results), file=sys.stderr)
    else:
        raise SystemExit(__doc__)


if __name__ == '__main__':
    main()
