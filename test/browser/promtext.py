# promtext.py: a small, strict parser of the Prometheus text exposition format (0.0.4), enough
# to check what "pipelinectl serve" writes on /metrics:
#   - "# HELP name text" and "# TYPE name counter|gauge|histogram|summary|untyped", TYPE at most
#     once per family and before its samples;
#   - samples "name{label="value",...} value [timestamp]", label values with \\ \" \n escapes;
#   - a series appears once; histogram buckets carry le, rise monotonically, end at +Inf, and
#     the +Inf bucket equals _count.
# parse(text) returns {sample name: {"type": family type, "samples": [(labels dict, float)]}}
# and raises ValueError naming the line on any violation.
import math
import re

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
SAMPLE = re.compile(r'^(' + NAME + r')(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?$')
TYPES = {'counter', 'gauge', 'histogram', 'summary', 'untyped'}


def _labels(s, lineno):
    out = {}
    i, n = 0, len(s)
    while i < n:
        m = re.match(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"', s[i:])
        if not m:
            raise ValueError(f'line {lineno}: bad label at "{s[i:]}"')
        name = m.group(1)
        i += m.end()
        val = []
        while True:
            if i >= n:
                raise ValueError(f'line {lineno}: unterminated label value')
            c = s[i]
            if c == '\\':
                if i + 1 >= n or s[i + 1] not in '\\"n':
                    raise ValueError(f'line {lineno}: bad escape in a label value')
                val.append({'\\': '\\', '"': '"', 'n': '\n'}[s[i + 1]])
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == '\n':
                raise ValueError(f'line {lineno}: newline in a label value')
            else:
                val.append(c)
                i += 1
        if name in out:
            raise ValueError(f'line {lineno}: label {name} twice')
        out[name] = ''.join(val)
        m = re.match(r'\s*(,|$)', s[i:])
        if not m:
            raise ValueError(f'line {lineno}: expected "," after a label')
        i += m.end()
    return out


def _value(s, lineno):
    if s in ('+Inf', 'Inf'):
        return math.inf
    if s == '-Inf':
        return -math.inf
    if s == 'NaN':
        return math.nan
    try:
        return float(s)
    except ValueError:
        raise ValueError(f'line {lineno}: "{s}" is not a number') from None


def parse(text):
    types, seen_samples, series = {}, set(), set()
    out = {}
    if text and not text.endswith('\n'):
        raise ValueError('the last line does not end with a newline')
    for lineno, line in enumerate(text.split('\n')[:-1], 1):
        if not line.strip():
            continue
        if line.startswith('#'):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] == 'TYPE':
                if len(parts) != 4 or parts[3] not in TYPES or not re.fullmatch(NAME, parts[2]):
                    raise ValueError(f'line {lineno}: bad TYPE line')
                if parts[2] in types:
                    raise ValueError(f'line {lineno}: a second TYPE for {parts[2]}')
                if parts[2] in seen_samples:
                    raise ValueError(f'line {lineno}: TYPE of {parts[2]} after its samples')
                types[parts[2]] = parts[3]
            elif len(parts) >= 2 and parts[1] == 'HELP':
                if len(parts) < 3 or not re.fullmatch(NAME, parts[2]):
                    raise ValueError(f'line {lineno}: bad HELP line')
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f'line {lineno}: not a sample: {line}')
        name, labels = m.group(1), _labels(m.group(2) or '', lineno)
        value = _value(m.group(3), lineno)
        family = name
        for suffix in ('_bucket', '_sum', '_count'):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and types.get(base) in ('histogram', 'summary'):
                family = base
        seen_samples.add(family)
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ValueError(f'line {lineno}: series {name}{labels} twice')
        series.add(key)
        if types.get(family) == 'histogram' and name.endswith('_bucket') and 'le' not in labels:
            raise ValueError(f'line {lineno}: a bucket without le')
        out.setdefault(name, {'type': types.get(family, 'untyped'), 'samples': []})
        out[name]['samples'].append((labels, value))
    # histograms: monotonic buckets ending at +Inf = _count
    for fam, t in types.items():
        if t != 'histogram':
            continue
        groups = {}
        for labels, v in out.get(fam + '_bucket', {}).get('samples', []):
            rest = tuple(sorted((k, x) for k, x in labels.items() if k != 'le'))
            groups.setdefault(rest, []).append((_value(labels['le'], 0), v))
        counts = {tuple(sorted(lab.items())): v for lab, v in out.get(fam + '_count', {}).get('samples', [])}
        for rest, bs in groups.items():
            bs.sort()
            if bs[-1][0] != math.inf:
                raise ValueError(f'{fam}{dict(rest)}: no +Inf bucket')
            if any(bs[i][1] > bs[i + 1][1] for i in range(len(bs) - 1)):
                raise ValueError(f'{fam}{dict(rest)}: buckets do not rise')
            if counts.get(rest) != bs[-1][1]:
                raise ValueError(f'{fam}{dict(rest)}: _count differs from the +Inf bucket')
    return out
