# Regenerates crates/protocol/src/jsapi/error_codes.rs from nats-server's server/errors.json:
#   python3 gen_error_codes.py <nats-server>/server/errors.json crates/protocol/src/jsapi/error_codes.rs
import json, re, sys
d = json.load(open(sys.argv[1]))
def name_of(c):
    n = c[2:] if c.startswith('JS') else c
    for suf in ('ErrorF','ErrF','Error','Err','F'):
        if n.endswith(suf) and len(n) > len(suf):
            n = n[:-len(suf)]; break
    s = re.sub(r'(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])', '_', n).lower()
    return s
names = {}
out = []
out.append('// Generated from nats-server\'s `server/errors.json` (2.15 line) by\n// crates/protocol/tests/jsapi_golden/gen_error_codes.py; do not edit by hand.\n')
out.append('// Each entry keeps nats-server\'s HTTP-ish code, JetStream error code and description\n')
out.append('// template; constructors substitute `{placeholder}`s exactly as nats-server does.\n\n')
out.append('use super::{ApiError, ErrorCode};\nuse std::fmt::Display;\n\n')
consts = []
fns = []
for e in sorted(d, key=lambda e: e['error_code']):
    n = name_of(e['constant'])
    assert n not in names, (n, e['constant'], names.get(n))
    names[n] = e['constant']
    C = n.upper()
    desc = e['description']
    consts.append((C, e))
    params = re.findall(r'\{(\w+)\}', desc)
    seen=[]
    for p in params:
        if p not in seen: seen.append(p)
    doc = desc.replace('[','\\[').replace(']','\\]')
    fns.append((n, C, seen, doc, e))
out.append('/// Every error nats-server can put in a JetStream API response, by its `errors.json` constant.\n')
out.append('#[allow(missing_docs)]\npub mod codes {\n    use super::ErrorCode;\n')
for C, e in consts:
    out.append(f'    /// `{e["constant"]}`: {e["code"]} / {e["error_code"]}.\n')
    out.append(f'    pub const {C}: ErrorCode = ErrorCode {{ name: {json.dumps(e["constant"])}, code: {e["code"]}, err_code: {e["error_code"]}, description: {json.dumps(e["description"])} }};\n')
out.append('\n    /// All codes, ordered by `err_code`.\n    pub const ALL: &[ErrorCode] = &[\n')
for C, e in consts:
    out.append(f'        {C},\n')
out.append('    ];\n}\n\n')
out.append('impl ApiError {\n')
for n, C, ps, doc, e in fns:
    out.append(f'    /// {e["code"]} / {e["error_code"]}: "{doc}".\n')
    if ps:
        args = ', '.join(f'{p}: impl Display' for p in ps)
        subs = ', '.join(f'("{{{p}}}", {p}.to_string())' for p in ps)
        out.append(f'    pub fn {n}({args}) -> Self {{\n        Self::with_args(codes::{C}, &[{subs}])\n    }}\n\n')
    else:
        out.append(f'    pub fn {n}() -> Self {{\n        Self::from_code(codes::{C})\n    }}\n\n')
out.append('}\n')
open(sys.argv[2],'w').write(''.join(out))
print(len(names))
for n in sorted(names): pass
