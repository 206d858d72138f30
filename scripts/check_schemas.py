#!/usr/bin/python3
"""check_schemas.py: prove that our .kps protocol declarations agree with
Kafka's upstream JSON message specs.

For every src/proto/schema/*.kps (or the files given on the command line) it
finds <Name>Request.json / <Name>Response.json in the spec directory and
compares:
  - api key, name, validVersions, flexibleVersions;
  - per field, matched by position and by the snake_case of the JSON name:
    type (primitive, []primitive, []Struct, {}Struct, with the JSON's struct
    name), versions, nullableVersions, tag / taggedVersions, default (ints,
    bools, floats), and the nested structure, recursively (commonStructs
    included; a bare `[]Name` reuses the earlier declaration of Name).
Version ranges are compared as sets of versions within the API's valid
range, so `0+` and `0-11` agree for an API whose versions are 0-11, and
nullable versions are compared where the field exists.

Usage: check_schemas.py [--spec-dir DIR] [--schema-dir DIR] [-v] [files...]
Exit 0 when everything agrees (or the spec dir is absent: prints "skipped"),
1 when any disagreement was printed, 2 on usage errors.
With -v it also prints notes about facts our format cannot state (string
defaults that differ from the implied one; see docs/kps-format.md).
"""
import argparse
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SPEC_DIR = '/work/shared/kafka-protocol'
DEFAULT_SCHEMA_DIR = os.path.join(ROOT, 'src', 'proto', 'schema')

INT_TYPES = {'int8': (-2**7, 2**7 - 1), 'int16': (-2**15, 2**15 - 1),
             'uint16': (0, 2**16 - 1), 'int32': (-2**31, 2**31 - 1),
             'int64': (-2**63, 2**63 - 1)}
PRIM_TYPES = set(INT_TYPES) | {'bool', 'float64', 'uuid', 'string', 'bytes',
                               'records'}
PRIM_ARRAY_TYPES = {'int8', 'int16', 'int32', 'int64', 'string', 'uuid'}
NULLABLE_PRIMS = {'string', 'bytes', 'records', 'uuid'}
MAXV = 0x7FFF   # stands for "open-ended" before clipping to the valid range


def snake(name):
    s = re.sub(r'(?<=[a-z0-9])([A-Z])', r'_\1', name)
    s = re.sub(r'(?<=[A-Z])([A-Z][a-z])', r'_\1', s)
    return s.lower()


def parse_versions(text):
    """'3+', '0-4', '2', 'none' -> (lo, hi) or None for no versions."""
    if text is None:
        return None
    text = str(text).strip()
    if text == 'none':
        return None
    m = re.fullmatch(r'(\d+)\+', text)
    if m:
        return (int(m.group(1)), MAXV)
    m = re.fullmatch(r'(\d+)-(\d+)', text)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi < lo:
            raise ValueError('empty version range %r' % text)
        return (lo, hi)
    m = re.fullmatch(r'(\d+)', text)
    if m:
        return (int(m.group(1)), int(m.group(1)))
    raise ValueError('bad version range %r' % text)


def vset(rng, valid):
    """Versions of rng that lie within the valid range, as a set."""
    if rng is None or valid is None:
        return frozenset()
    lo, hi = max(rng[0], valid[0]), min(rng[1], valid[1])
    return frozenset(range(lo, hi + 1)) if lo <= hi else frozenset()


def show(s):
    """Render a version set compactly: {} -> none, {3..11} -> 3-11."""
    if not s:
        return 'none'
    out, v = [], sorted(s)
    start = prev = v[0]
    for x in v[1:] + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(str(start) if start == prev else '%d-%d' % (start, prev))
        if x is not None:
            start = prev = x
    return ','.join(out)


# ---------------------------------------------------------------- .kps parser

class KField:
    def __init__(self, line):
        self.line = line
        self.name = None
        self.type = None
        self.versions = (0, MAXV)
        self.null = None
        self.tag = None
        self.tagged = None
        self.default = None
        self.children = []
        self.ref = False      # bare []Name reusing an earlier declaration


class KSchema:
    def __init__(self, path):
        self.path = path
        self.key = None
        self.name = None
        self.valid = None
        self.flexible = None
        self.sides = {}        # 'request'/'response' -> [KField]
        self.errors = []       # (line, message)


def parse_kps(path):
    ks = KSchema(path)
    with open(path) as fh:
        lines = fh.read().split('\n')
    side = None
    stack = []                 # [(indent, KField)]
    declared = {}              # struct name -> KField, per side

    def err(ln, msg):
        ks.errors.append((ln, msg))

    for ln, raw in enumerate(lines, 1):
        text = raw.split('#', 1)[0].rstrip()
        if not text.strip():
            continue
        if '\t' in text:
            err(ln, 'tab in indentation')
            continue
        indent = len(text) - len(text.lstrip(' '))
        toks = text.split()
        if indent == 0:
            if toks[0] == 'api':
                m = re.fullmatch(r'api\s+(\d+)\s+([A-Z][A-Za-z0-9]*)\s+versions\s+(\S+)\s+flexible\s+(\S+)',
                                 text.strip())
                if not m:
                    err(ln, 'bad api line: %r' % text.strip())
                    continue
                if ks.key is not None:
                    err(ln, 'second api line')
                ks.key, ks.name = int(m.group(1)), m.group(2)
                try:
                    ks.valid = parse_versions(m.group(3))
                    ks.flexible = parse_versions(m.group(4))
                except ValueError as e:
                    err(ln, str(e))
                if ks.valid is None:
                    err(ln, 'api without versions')
            elif toks == ['request'] or toks == ['response']:
                side = toks[0]
                if side in ks.sides:
                    err(ln, 'second %s section' % side)
                ks.sides[side] = []
                stack = []
                declared = {}
            else:
                err(ln, 'unexpected line: %r' % text.strip())
            continue
        if side is None:
            err(ln, 'field outside request/response')
            continue
        if indent % 2:
            err(ln, 'odd indentation')
            continue
        depth = indent // 2
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent_depth = stack[-1][0] if stack else 0
        if depth != parent_depth + 1:
            err(ln, 'indentation jumps by more than one level')
            continue
        if stack:
            par = stack[-1][1]
            if not (par.type.startswith('[]') or par.type.startswith('{}')) \
                    or par.type[2:] in PRIM_ARRAY_TYPES:
                err(ln, 'nested field under non-struct %s' % par.name)
                continue
            if par.ref:
                err(ln, 'nested fields under a bare reuse of %s' % par.type)
        f = KField(ln)
        if len(toks) < 2:
            err(ln, 'field without type')
            continue
        f.name, f.type = toks[0], toks[1]
        if not re.fullmatch(r'[a-z][a-z0-9_]*', f.name):
            err(ln, 'field name %r is not snake_case' % f.name)
        seen_v = False
        for t in toks[2:]:
            try:
                if '=' in t:
                    k, v = t.split('=', 1)
                    if k == 'null':
                        f.null = parse_versions(v)
                    elif k == 'tag':
                        f.tag = int(v)
                    elif k == 'tagged':
                        f.tagged = parse_versions(v)
                    elif k == 'default':
                        f.default = v
                    else:
                        err(ln, 'unknown option %r' % t)
                elif not seen_v:
                    f.versions = parse_versions(t)
                    seen_v = True
                else:
                    err(ln, 'unexpected token %r' % t)
            except ValueError as e:
                err(ln, str(e))
        if f.tagged is not None and f.tag is None:
            err(ln, 'tagged= without tag=')
        (stack[-1][1].children if stack else ks.sides[side]).append(f)
        stack.append((depth, f))
    # resolve bare struct references, check struct name uniqueness
    for side, fields in ks.sides.items():
        seen = {}

        def visit(fs):
            for f in fs:
                base = f.type[2:] if f.type[:2] in ('[]', '{}') else None
                if base is None or base in PRIM_ARRAY_TYPES and f.type.startswith('[]'):
                    continue
                if not f.children:
                    if base in seen:
                        f.children = seen[base].children
                        f.ref = True
                    else:
                        err(f.line, 'struct %s has no fields and no earlier declaration' % base)
                    continue
                if base in seen and not same_struct(seen[base].children, f.children):
                    err(f.line, 'struct %s declared twice with different fields (%s side)' % (base, side))
                seen.setdefault(base, f)
                visit(f.children)
        visit(fields)
    return ks


def same_struct(a, b):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if (x.name, x.type, x.versions, x.null, x.tag, x.tagged, x.default) != \
                (y.name, y.type, y.versions, y.null, y.tag, y.tagged, y.default):
            return False
        if not same_struct(x.children, y.children):
            return False
    return True


# ---------------------------------------------------------------- JSON specs

def load_json(path):
    with open(path) as fh:
        text = '\n'.join(l for l in fh.read().split('\n')
                         if not l.lstrip().startswith('//'))
    return json.loads(text)


def int_default(v, typ):
    if isinstance(v, bool):
        raise ValueError('bool default for %s' % typ)
    if isinstance(v, int):
        return v
    return int(str(v).strip(), 0)


def bool_default(v):
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ('true', 'false'):
        return s == 'true'
    raise ValueError('bad bool default %r' % v)


# ---------------------------------------------------------------- comparison

class Checker:
    def __init__(self, verbose):
        self.problems = 0
        self.verbose = verbose

    def bad(self, ks, line, msg):
        self.problems += 1
        print('%s:%s: %s' % (shown_path(ks.path), line, msg))

    def note(self, ks, line, msg):
        if self.verbose:
            print('%s:%s: note: %s' % (shown_path(ks.path), line, msg))

    def check(self, ks, spec_dir):
        for ln, msg in ks.errors:
            self.bad(ks, ln, msg)
        if ks.key is None:
            self.bad(ks, 1, 'no api line')
            return
        want_file = snake(ks.name) + '.kps'
        if os.path.basename(ks.path) != want_file:
            self.bad(ks, 1, 'file should be named %s' % want_file)
        specs = {}
        for side, suffix in (('request', 'Request'), ('response', 'Response')):
            p = os.path.join(spec_dir, ks.name + suffix + '.json')
            if not os.path.exists(p):
                self.bad(ks, 1, 'no upstream spec %s' % p)
                return
            try:
                specs[side] = load_json(p)
            except ValueError as e:
                self.bad(ks, 1, 'cannot parse %s: %s' % (p, e))
                return
        for side, js in specs.items():
            where = '%s %s' % (ks.name, side)
            if js.get('type') != side:
                self.bad(ks, 1, '%s: json type is %r' % (where, js.get('type')))
            if js.get('apiKey') != ks.key:
                self.bad(ks, 1, '%s: api key %d != json %r' % (where, ks.key, js.get('apiKey')))
            jvalid = parse_versions(js.get('validVersions'))
            if ks.valid != jvalid:
                self.bad(ks, 1, '%s: versions %s != json validVersions %s'
                         % (where, fmt(ks.valid), js.get('validVersions')))
            jflex = vset(parse_versions(js.get('flexibleVersions')), jvalid)
            if vset(ks.flexible, jvalid) != jflex:
                self.bad(ks, 1, '%s: flexible %s != json flexibleVersions %s'
                         % (where, show(vset(ks.flexible, jvalid)), js.get('flexibleVersions')))
            if js.get('latestVersionUnstable'):
                self.bad(ks, 1, '%s: json marks the latest version unstable' % where)
            if side not in ks.sides:
                self.bad(ks, 1, 'no %s section' % side)
                continue
            common = {c['name']: c for c in js.get('commonStructs', [])}
            ctx = Ctx(ks, jvalid, jflex, common)
            self.fields(ctx, ks.sides[side], js.get('fields', []), where,
                        (0, MAXV), 1)

    def fields(self, ctx, kfs, jfs, where, parent_v, line):
        ks = ctx.ks
        for i in range(max(len(kfs), len(jfs))):
            kf = kfs[i] if i < len(kfs) else None
            jf = jfs[i] if i < len(jfs) else None
            if kf is None:
                self.bad(ks, kfs[-1].line if kfs else line,
                         '%s: missing field #%d %s (json %s)'
                         % (where, i + 1, snake(jf['name']), jf['name']))
                continue
            if jf is None:
                self.bad(ks, kf.line, '%s: extra field #%d %s (not in json)'
                         % (where, i + 1, kf.name))
                continue
            self.field(ctx, kf, jf, where)

    def field(self, ctx, kf, jf, where):
        ks, valid = ctx.ks, ctx.valid
        path = '%s.%s' % (where, kf.name)
        ln = kf.line
        jname = jf.get('name', '?')
        if kf.name != snake(jname):
            self.bad(ks, ln, '%s: name should be %s (json %s)' % (path, snake(jname), jname))
        for k in ('flexibleVersions', 'zeroCopy'):
            if k in jf:
                self.bad(ks, ln, '%s: json field has %s=%r, which .kps cannot state'
                         % (path, k, jf[k]))
        jtype = jf.get('type', '')
        jarr = jtype.startswith('[]')
        jbase = jtype[2:] if jarr else jtype
        jstruct = jbase not in PRIM_TYPES
        if jstruct:
            want_type = ('[]' if jarr else '{}') + jbase
        else:
            want_type = jtype
            if jarr and jbase not in PRIM_ARRAY_TYPES:
                self.bad(ks, ln, '%s: json array type %s has no .kps spelling' % (path, jtype))
        if kf.type != want_type:
            self.bad(ks, ln, '%s: type %s != json %s' % (path, kf.type, jtype))
        # versions
        try:
            jv = parse_versions(jf.get('versions'))
        except ValueError as e:
            self.bad(ks, ln, '%s: json: %s' % (path, e))
            return
        kvs, jvs = vset(kf.versions, valid), vset(jv, valid)
        if kvs != jvs:
            self.bad(ks, ln, '%s: versions %s != json %s' % (path, show(kvs), jf.get('versions')))
        # nullable: where the field exists
        jn = parse_versions(jf.get('nullableVersions'))
        kns = vset(kf.null, valid) & kvs
        jns = vset(jn, valid) & jvs
        if kns != jns:
            self.bad(ks, ln, '%s: nullable in %s != json nullableVersions %s (effective %s)'
                     % (path, show(kns), jf.get('nullableVersions'), show(jns)))
        if kf.null is not None and not (kf.type.startswith('[]') or kf.type.startswith('{}')
                                        or kf.type in NULLABLE_PRIMS):
            self.bad(ks, ln, '%s: null= on non-nullable type %s' % (path, kf.type))
        # tags
        jtag = jf.get('tag')
        if kf.tag != jtag:
            self.bad(ks, ln, '%s: tag %s != json %s' % (path, kf.tag, jtag))
        if jtag is not None or kf.tag is not None:
            ktv = vset(kf.tagged if kf.tagged is not None else kf.versions, valid)
            jt = jf.get('taggedVersions')
            jtv = vset(parse_versions(jt) if jt is not None else jv, valid)
            if kf.tag is not None and ktv != jtv:
                self.bad(ks, ln, '%s: tagged in %s != json taggedVersions %s'
                         % (path, show(ktv), jt))
            if kf.tag is not None and not ktv <= ctx.flex:
                self.bad(ks, ln, '%s: tagged in non-flexible versions %s'
                         % (path, show(ktv - ctx.flex)))
        elif 'taggedVersions' in jf:
            self.bad(ks, ln, '%s: json has taggedVersions without tag' % path)
        # defaults
        self.default(ctx, kf, jf, path, jtype, jvs, jns)
        # nested structure
        if jstruct:
            if 'fields' in jf:
                jsub = jf['fields']
            elif jbase in ctx.common:
                jsub = ctx.common[jbase].get('fields', [])
            else:
                self.bad(ks, ln, '%s: json struct %s has no definition' % (path, jbase))
                return
            if kf.type == want_type:
                self.fields(ctx, kf.children, jsub, '%s%s' % (path, '[]' if jarr else ''),
                            jv, ln)
        elif kf.children:
            self.bad(ks, ln, '%s: nested fields under a primitive type' % path)

    def default(self, ctx, kf, jf, path, jtype, jvs, jns):
        ks, ln = ctx.ks, kf.line
        jd = jf.get('default')
        try:
            if jtype in INT_TYPES:
                want = int_default(jd, jtype) if jd is not None else 0
                got = int_default(kf.default, jtype) if kf.default is not None else 0
                lo, hi = INT_TYPES[jtype]
                if not lo <= got <= hi:
                    self.bad(ks, ln, '%s: default %d out of range for %s' % (path, got, jtype))
                if got != want:
                    self.bad(ks, ln, '%s: default %d != json %r' % (path, got, jd))
            elif jtype == 'bool':
                want = bool_default(jd) if jd is not None else False
                if kf.default is not None and kf.default not in ('true', 'false'):
                    self.bad(ks, ln, '%s: bool default must be true/false, not %r'
                             % (path, kf.default))
                got = kf.default == 'true'
                if got != want:
                    self.bad(ks, ln, '%s: default %s != json %r'
                             % (path, str(got).lower(), jd))
            elif jtype == 'float64':
                want = float(jd) if jd is not None else 0.0
                got = float(kf.default) if kf.default is not None else 0.0
                if got != want:
                    self.bad(ks, ln, '%s: default %r != json %r' % (path, got, jd))
            else:
                if kf.default is not None:
                    self.bad(ks, ln, '%s: default= is only for ints, bools and floats' % path)
                if jtype == 'string':
                    # .kps: strings default to empty, or null when nullable
                    # in every version the field exists in.
                    implied_null = bool(jvs) and jns == jvs
                    json_null = jd == 'null'
                    if jd not in (None, '', 'null'):
                        self.bad(ks, ln, '%s: json string default %r cannot be stated in .kps'
                                 % (path, jd))
                    elif implied_null != json_null:
                        self.note(ks, ln, '%s: .kps implies default %s, json default is %s'
                                  % (path, 'null' if implied_null else '""',
                                     'null' if json_null else '""'))
                elif jd is not None:
                    self.bad(ks, ln, '%s: json default %r for %s cannot be stated in .kps'
                             % (path, jd, jtype))
        except ValueError as e:
            self.bad(ks, ln, '%s: %s' % (path, e))


class Ctx:
    def __init__(self, ks, valid, flex, common):
        self.ks, self.valid, self.flex, self.common = ks, valid, flex, common


def shown_path(p):
    rel = os.path.relpath(p)
    return p if rel.startswith('..') else rel


def fmt(rng):
    if rng is None:
        return 'none'
    return '%d+' % rng[0] if rng[1] == MAXV else '%d-%d' % rng


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--spec-dir', default=DEFAULT_SPEC_DIR)
    ap.add_argument('--schema-dir', default=DEFAULT_SCHEMA_DIR)
    ap.add_argument('-v', '--verbose', action='store_true')
    ap.add_argument('files', nargs='*')
    a = ap.parse_args()
    if not os.path.isdir(a.spec_dir):
        print('check_schemas: skipped (no spec dir %s)' % a.spec_dir)
        return 0
    files = a.files or sorted(glob.glob(os.path.join(a.schema_dir, '*.kps')))
    if not files:
        print('check_schemas: no .kps files in %s' % a.schema_dir)
        return 1
    ck = Checker(a.verbose)
    keys = {}
    for p in files:
        ks = parse_kps(p)
        if ks.key is not None:
            if ks.key in keys:
                ck.bad(ks, 1, 'api key %d also declared in %s' % (ks.key, keys[ks.key]))
            keys[ks.key] = shown_path(p)
        ck.check(ks, a.spec_dir)
    if ck.problems:
        print('check_schemas: %d disagreement(s) in %d schema(s)' % (ck.problems, len(files)))
        return 1
    print('check_schemas: OK, %d schema(s) agree with %s' % (len(files), a.spec_dir))
    return 0


if __name__ == '__main__':
    sys.exit(main())
