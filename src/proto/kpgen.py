#!/usr/bin/env python3
"""kpgen (stub, replaced shortly by the real generator): emits empty tables."""
import argparse
ap = argparse.ArgumentParser()
ap.add_argument('--out-c'); ap.add_argument('--out-h'); ap.add_argument('schemas', nargs='*')
a = ap.parse_args()
open(a.out_h, 'w').write('#pragma once\nextern const kp_api_desc_t kp_api_descs[];\nextern const int kp_api_ndescs;\n')
open(a.out_c, 'w').write('#include "proto/proto.h"\nconst kp_api_desc_t kp_api_descs[1];\nconst int kp_api_ndescs = 0;\n')
