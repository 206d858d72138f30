#!/usr/bin/env python3
"""kpgen — the real generator: turns our .kps protocol schemas into C.

Input: src/proto/schema/*.kps, in the format docs/kps-format.md defines.
Output: kp_msgs.h (one C struct per message and nested struct, API keys,
descriptor declarations) and kp_msgs.c (the descriptor tables that the one
generic codec, src/proto/codec.c, walks for every version).

Run by CMake at build time; fails loudly (file:line: message) on any schema
error so a bad declaration never becomes a silent codec bug.
"""
import argparse
import re
import sys

OPEN = 0x7FFF
PRIMS = {
    'bool': ('bool', 'KP_T_BOOL'),
    'int8': ('int8_t', 'KP_T_INT8'),
    'int16': ('int16_t', 'KP_T_INT16'),
    'uint16': ('uint16_t', 'KP_T_UINT16'),
    'int32': ('int32_t', 'KP_T_INT32'),
    'int64': ('int64_t', 'KP_T_INT64'),
    'float64': ('double', 'KP_T_FLOAT64'),
    'uuid': ('kp_uuid_t', 'KP_T_UUID'),
    'string': ('kp_str_t', 'KP_T_STRING'),
    'bytes': ('kp_bytes_t', 'KP_T_BYTES'),
    'records': ('kp_records_t', 'KP_T_RECORDS'),
}
ARRAY_PRIMS = {'int32', 'int64', 'string', 'uuid', 'int16', 'int8'}


class SchemaError(Exception):
    pass


def snake(name):
    s = re.sub(r'(?<=[a-z0-9])([A-Z])', r'_\1', name)
    s = re.sub(r'(?<=[A-Z])([A-Z][a-z])', r'_\1', s)
    return s.lower()


def parse_range(tok, where):
    m = re.fullmatch(r'(\d+)\+', tok)
    if m:
        return int(m.group(1)), OPEN
    m = re.fullmatch(r'(\d+)-(\d+)', tok)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if a > b:
            raise SchemaError(f'{where}: empty version range {tok}')
        return a, b
    m = re.fullmatch(r'(\d+)', tok)
    if m:
        return int(m.group(1)), int(m.group(1))
    if tok == 'none':
        return -1, -1
    raise SchemaError(f'{where}: bad version range {tok!r}')


class Field:
    def __init__(self, name, typ, where):
        self.name = name
        self.typ = typ
        self.where = where
        self.vmin, self.vmax = 0, OPEN
        self.nmin, self.nmax = -1, -1
        self.tag = -1
        self.tmin, self.tmax = None, None
        self.default = None
        self.struct = None  # Struct for []Name / {}Name
        self.kind = None    # 'prim' | 'array' | 'struct'
        self.elem = None    # primitive element type for arrays


class Struct:
    def __init__(self, cname, where):
        self.cname = cname
        self.fields = []
        self.where = where


class Api:
    def __init__(self, key, name, vmin, vmax, flex, where):
        self.key, self.name = key, name
        self.vmin, self.vmax, self.flex = vmin, vmax, flex
        self.where = where
        self.req = None
        self.resp = None
        self.structs = []  # in emission order (children first)


def parse_file(path):
    apis = []
    api = None
    side = None
    stack = []  # (indent, Struct)
    named = {}  # per side: Name -> Struct
    with open(path) as f:
        lines = f.readlines()
    for lineno, raw in enumerate(lines, 1):
        where = f'{path}:{lineno}'
        line = raw.split('#', 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(' '))
        if '\t' in line[:indent]:
            raise SchemaError(f'{where}: tabs are not allowed for indentation')
        toks = line.split()
        if indent == 0:
            if toks[0] == 'api':
                if len(toks) != 7 or toks[3] != 'versions' or toks[5] != 'flexible':
                    raise SchemaError(f'{where}: expected "api KEY Name versions A-B flexible N+|none"')
                vmin, vmax = parse_range(toks[4], where)
                flex = -1 if toks[6] == 'none' else parse_range(toks[6], where)[0]
                api = Api(int(toks[1]), toks[2], vmin, vmax, flex, where)
                apis.append(api)
                side = None
                continue
            if toks[0] in ('request', 'response') and len(toks) == 1:
                if api is None:
                    raise SchemaError(f'{where}: {toks[0]} before api')
                side = toks[0]
                tag = 'req' if side == 'request' else 'resp'
                top = Struct(f'kp_{snake(api.name)}_{tag}', where)
                if side == 'request':
                    api.req = top
                else:
                    api.resp = top
                stack = [(0, top)]
                named = {}
                continue
            raise SchemaError(f'{where}: unexpected {toks[0]!r}')
        if side is None:
            raise SchemaError(f'{where}: field outside request/response')
        if indent % 2:
            raise SchemaError(f'{where}: indentation must be a multiple of 2')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if not stack or stack[-1][0] != indent - 2:
            raise SchemaError(f'{where}: unexpected indentation')
        parent = stack[-1][1]
        if len(toks) < 2:
            raise SchemaError(f'{where}: expected "name type ..."')
        fld = Field(toks[0], toks[1], where)
        if not re.fullmatch(r'[a-z][a-z0-9_]*', fld.name):
            raise SchemaError(f'{where}: field name must be snake_case: {fld.name}')
        if any(x.name == fld.name for x in parent.fields):
            raise SchemaError(f'{where}: duplicate field {fld.name}')
        for t in toks[2:]:
            if t.startswith('null='):
                fld.nmin, fld.nmax = parse_range(t[5:], where)
            elif t.startswith('tag='):
                fld.tag = int(t[4:])
            elif t.startswith('tagged='):
                fld.tmin, fld.tmax = parse_range(t[7:], where)
            elif t.startswith('default='):
                fld.default = t[8:]
            else:
                fld.vmin, fld.vmax = parse_range(t, where)
        typ = fld.typ
        if typ in PRIMS:
            fld.kind = 'prim'
        elif typ.startswith('[]') and typ[2:] in ARRAY_PRIMS:
            fld.kind = 'array'
            fld.elem = typ[2:]
        elif typ.startswith('[]') or typ.startswith('{}'):
            fld.kind = 'array' if typ.startswith('[]') else 'struct'
            sname = typ[2:]
            if not re.fullmatch(r'[A-Z][A-Za-z0-9]*', sname):
                raise SchemaError(f'{where}: struct name must be CamelCase: {sname}')
            tag = 'req' if side == 'request' else 'resp'
            # look ahead: does this field have nested lines?
            has_children = False
            for nxt in lines[lineno:]:
                n2 = nxt.split('#', 1)[0].rstrip()
                if not n2.strip():
                    continue
                has_children = (len(n2) - len(n2.lstrip(' '))) > indent
                break
            if has_children:
                if sname in named:
                    raise SchemaError(f'{where}: struct {sname} declared twice; reuse it with a bare "{typ}"')
                st = Struct(f'kp_{snake(api.name)}_{tag}_{snake(sname)}', where)
                named[sname] = st
                fld.struct = st
                stack.append((indent, st))
            else:
                if sname not in named:
                    raise SchemaError(f'{where}: struct {sname} used before it is declared')
                fld.struct = named[sname]
        else:
            raise SchemaError(f'{where}: unknown type {typ!r}')
        if fld.tag >= 0 and fld.tmin is None:
            fld.tmin, fld.tmax = fld.vmin, fld.vmax
        if fld.tag < 0 and fld.tmin is not None:
            raise SchemaError(f'{where}: tagged= without tag=')
        parent.fields.append(fld)
    for a in apis:
        if a.req is None or a.resp is None:
            raise SchemaError(f'{a.where}: api {a.name} needs both request and response')
    return apis


def collect_structs(top, out, seen):
    for f in top.fields:
        if f.struct is not None and id(f.struct) not in seen:
            seen.add(id(f.struct))
            collect_structs(f.struct, out, seen)
            out.append(f.struct)


def ctype(f):
    if f.kind == 'prim':
        return PRIMS[f.typ][0]
    if f.kind == 'struct':
        return f.struct.cname + '_t'
    if f.struct is not None:
        return f'KP_ARR({f.struct.cname}_t)'
    return f'KP_ARR({PRIMS[f.elem][0]})'


def default_value(f):
    d = f.default
    if d is None:
        return 0
    if d in ('true', 'false'):
        return 1 if d == 'true' else 0
    if d == 'null':
        return 0
    try:
        return int(d, 0)
    except ValueError:
        raise SchemaError(f'{f.where}: default must be an integer, true/false or null: {d}')


def emit(apis, out_h, out_c):
    h = []
    c = []
    h.append('/* Generated by src/proto/kpgen.py from the .kps files in src/proto/schema — do not edit. */')
    h.append('#ifndef RILL_KP_MSGS_H\n#define RILL_KP_MSGS_H\n')
    h.append('enum {')
    for a in sorted(apis, key=lambda a: a.key):
        h.append(f'    KP_API_{snake(a.name).upper()} = {a.key},')
    h.append('};\n')
    c.append('/* Generated by src/proto/kpgen.py from the .kps files in src/proto/schema — do not edit. */')
    c.append('#include <stddef.h>\n#include "proto/proto.h"\n')
    for a in sorted(apis, key=lambda a: a.key):
        for top in (a.req, a.resp):
            structs = []
            collect_structs(top, structs, set())
            structs.append(top)
            for st in structs:
                h.append(f'typedef struct {st.cname} {{')
                if not st.fields:
                    h.append('    char kp__empty; /* no fields */')
                for f in st.fields:
                    h.append(f'    {ctype(f)} {f.name};')
                h.append(f'}} {st.cname}_t;')
                h.append(f'extern const kp_struct_desc_t {st.cname}_desc;\n')
                rows = []
                for f in st.fields:
                    if f.kind == 'prim':
                        t, et = PRIMS[f.typ][1], '0'
                    elif f.kind == 'struct':
                        t, et = 'KP_T_STRUCT', '0'
                    else:
                        t = 'KP_T_ARRAY'
                        et = 'KP_T_STRUCT' if f.struct is not None else PRIMS[f.elem][1]
                    sub = f'&{f.struct.cname}_desc' if f.struct is not None else 'NULL'
                    tmin = f.tmin if f.tmin is not None else -1
                    tmax = f.tmax if f.tmax is not None else -1
                    rows.append(
                        f'    {{"{f.name}", {t}, {et}, {f.vmin}, {f.vmax}, {f.nmin}, {f.nmax}, {f.tag}, '
                        f'{tmin}, {tmax}, offsetof({st.cname}_t, {f.name}), {default_value(f)}LL, {sub}}},')
                if rows:
                    c.append(f'static const kp_field_desc_t {st.cname}_fields[] = {{')
                    c.extend(rows)
                    c.append('};')
                    c.append(f'const kp_struct_desc_t {st.cname}_desc = {{"{st.cname}", sizeof({st.cname}_t), '
                             f'{len(rows)}, {st.cname}_fields}};\n')
                else:
                    c.append(f'const kp_struct_desc_t {st.cname}_desc = {{"{st.cname}", sizeof({st.cname}_t), 0, NULL}};\n')
    h.append('extern const kp_api_desc_t kp_api_descs[];')
    h.append('extern const int kp_api_ndescs;\n')
    h.append('#endif')
    c.append('const kp_api_desc_t kp_api_descs[] = {')
    for a in sorted(apis, key=lambda a: a.key):
        c.append(f'    {{{a.key}, "{a.name}", {a.vmin}, {a.vmax}, {a.flex}, &{a.req.cname}_desc, &{a.resp.cname}_desc}},')
    if not apis:
        c.append('    {0, NULL, 0, 0, -1, NULL, NULL},')
    c.append('};')
    c.append(f'const int kp_api_ndescs = {len(apis)};')
    for path, lines in ((out_h, h), (out_c, c)):
        text = '\n'.join(lines) + '\n'
        try:
            with open(path) as f:
                if f.read() == text:
                    continue
        except OSError:
            pass
        with open(path, 'w') as f:
            f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--out-c', required=True)
    ap.add_argument('--out-h', required=True)
    ap.add_argument('schemas', nargs='*')
    args = ap.parse_args()
    apis = []
    try:
        for s in sorted(args.schemas):
            apis.extend(parse_file(s))
        keys = {}
        for a in apis:
            if a.key in keys:
                raise SchemaError(f'{a.where}: api key {a.key} already declared at {keys[a.key]}')
            keys[a.key] = a.where
        emit(apis, args.out_h, args.out_c)
    except SchemaError as e:
        print(f'kpgen: {e}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
