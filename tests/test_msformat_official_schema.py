"""Cross-check the `.ms` reader and writer against the OFFICIAL MindSpore Lite schema, decoded by flatc.

The official schema (mindspore-lite/schema/model.fbs, ops.fbs, ops_types.fbs) is not shipped with the
project: it is read from shared/schema/mslite beside the checkout (or MSLITE_SCHEMA_DIR). These tests
need `flatc` on PATH (Debian: flatbuffers-compiler, which scripts/test.sh installs when it can);
without it or the schema they skip and say why.

flatc turns each file into JSON (`--defaults-json`, so omitted fields appear with their schema
default, as the reader fills them in); the JSON is then compared field by field with read_ms's
MsModel: graph, subgraph, nodes (name, union member, indices, quantType, every attribute), tensors
(nodeType, dataType, dims, format, data bytes, quantParams, ...). Enum names in the JSON are mapped
to ints with the enums parsed from the official schema itself, not with the project's tables.
"""
import json
import math
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from runtime.msformat import schema
from runtime.msformat.model import (FORMAT_NAMES, NODE_TYPE_COMPUTED, NODE_TYPE_CONST, NUMPY_TO_TYPEID,
                                    QUANT_WEIGHT, TYPE_FLOAT32, TYPE_INT8, MsModel, MsNode, MsTensor,
                                    QuantParam)
from runtime.msformat.reader import read_ms
from runtime.msformat.writer import write_ms

FLATC = shutil.which("flatc")
# The official schema sits in shared/ beside the checkout; MSLITE_SCHEMA_DIR overrides it.
_SHARED_SCHEMA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "shared", "schema", "mslite")
SCHEMA_DIR = os.environ.get("MSLITE_SCHEMA_DIR") or (_SHARED_SCHEMA if os.path.isdir(_SHARED_SCHEMA) else None)
SCHEMA_FILES = ("model.fbs", "ops.fbs", "ops_types.fbs")


# ---------------------------------------------------------------------------------------------
# The official schema, parsed just enough for enums, the union order and the op tables.

def _strip_comments(text):
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


class OfficialSchema:
    def __init__(self, folder):
        self.folder = folder
        self.model_fbs = os.path.join(folder, "model.fbs")
        text = "".join(_strip_comments(open(os.path.join(folder, f), encoding="utf-8").read())
                       for f in SCHEMA_FILES)
        self.enums = {}
        for m in re.finditer(r"\benum\s+(\w+)\s*:\s*\w+\s*\{(.*?)\}", text, re.S):
            values, nxt = {}, 0
            for item in (x.strip() for x in m.group(2).split(",")):
                if not item:
                    continue
                if "=" in item:
                    item, value = (x.strip() for x in item.split("="))
                    nxt = int(value)
                values[item] = nxt
                nxt += 1
            self.enums[m.group(1)] = values
        union = re.search(r"\bunion\s+PrimitiveType\s*\{(.*?)\}", text, re.S).group(1)
        self.union = [x.strip() for x in union.split(",") if x.strip()]
        self.tables = {}
        for m in re.finditer(r"\btable\s+(\w+)\s*\{(.*?)\}", text, re.S):
            fields = []
            for decl in (x.strip() for x in m.group(2).split(";")):
                if decl:
                    name, rest = (x.strip() for x in decl.split(":", 1))
                    typ, _, default = rest.partition("=")
                    fields.append((name, typ.split("(")[0].strip(), default.strip() or None))
            self.tables[m.group(1)] = fields

    def field_type(self, table, field):
        return dict((n, t) for n, t, _ in self.tables[table])[field]

    def enum_value(self, enum, value):
        """flatc writes enum values as their names (or the number when it has no name); schema
        defaults may be either too."""
        if isinstance(value, str) and value in self.enums[enum]:
            return self.enums[enum][value]
        return int(value)

    def decode(self, path, out_dir):
        """flatc's JSON of a `.ms` file, with every schema default written out. Without
        --raw-binary flatc also checks the file identifier (MSL2) against model.fbs. flatc 2.0.8 does
        not run the FlatBuffers verifier: it may crash on a corrupt file, so a failure says "could
        not decode", not why."""
        os.makedirs(out_dir, exist_ok=True)
        proc = subprocess.run([FLATC, "--json", "--strict-json", "--defaults-json",
                               "-o", str(out_dir), self.model_fbs, "--", str(path)],
                              capture_output=True, text=True, timeout=300)
        out = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0] + ".json")
        assert proc.returncode == 0 and os.path.isfile(out), \
            f"flatc could not decode {path} with the official schema:\n{proc.stderr[-2000:]}"
        with open(out, encoding="utf-8") as f:
            return json.load(f)


@pytest.fixture(scope="session")
def official():
    if not FLATC:
        pytest.skip("flatc not installed (Debian/Ubuntu: apt-get install flatbuffers-compiler)")
    if not SCHEMA_DIR:
        pytest.skip("MSLITE_SCHEMA_DIR not set: the official schema is not shipped with the project "
                    "(point it at a folder with mindspore-lite/schema/{model,ops,ops_types}.fbs)")
    missing = [f for f in SCHEMA_FILES if not os.path.isfile(os.path.join(SCHEMA_DIR, f))]
    if missing:
        pytest.skip(f"MSLITE_SCHEMA_DIR={SCHEMA_DIR} lacks {', '.join(missing)}")
    return OfficialSchema(SCHEMA_DIR)


# ---------------------------------------------------------------------------------------------
# Field-by-field comparison of flatc's JSON with read_ms's MsModel.

def _close(a, b, rel=1e-6):
    return a == b or math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-30)


class Diff:
    def __init__(self):
        self.problems = []

    def eq(self, where, official, ours, close=False):
        same = _close(official, ours) if close else official == ours
        if not same:
            self.problems.append(f"{where}: flatc {official!r} != read_ms {ours!r}")


def _attr_diff(d, off, where, op, js, attrs):
    table = off.tables[op]
    d.eq(f"{where} attribute names", sorted(n for n, _, _ in table), sorted(attrs))
    for name, typ, _ in table:
        ours, value = attrs.get(name), js.get(name)
        w = f"{where}.{name}"
        if typ in off.enums:
            d.eq(w, off.enum_value(typ, value), ours)
        elif typ == "float":
            d.eq(w, value, ours, close=True)
        elif typ in ("bool", "long", "int"):
            d.eq(w, value, ours)
        elif typ == "string":
            d.eq(w, value or "", ours)
        elif typ in ("[long]", "[int]"):
            d.eq(w, list(value or ()), list(ours))
        elif typ == "[float]":
            d.eq(f"{w} length", len(value or ()), len(ours))
            for k, (a, b) in enumerate(zip(value or (), ours)):
                d.eq(f"{w}[{k}]", a, b, close=True)
        elif typ == "Vec2D":
            rows = [list(r.get("data", ())) for r in (value or {}).get("data", ())]
            d.eq(w, rows, [list(r) for r in ours])
        elif typ == "[Attribute]":
            d.eq(w, [(a.get("name", ""), bytes(a.get("data", ()))) for a in value or ()],
                 [(n, bytes(b)) for n, b in ours])
        else:  # pragma: no cover - a schema type this test does not know
            d.problems.append(f"{w}: unhandled schema type {typ}")


def compare(off, js, model):
    """Problems found comparing flatc's JSON `js` of a file with `model` = read_ms(file)."""
    d = Diff()
    d.eq("version", js.get("version", ""), model.version)
    d.eq("name", js.get("name", ""), model.name)
    d.eq("fmkType", js.get("fmkType"), model.fmk_type)
    d.eq("inputIndex", js.get("inputIndex", []), list(model.inputs))
    d.eq("outputIndex", js.get("outputIndex", []), list(model.outputs))
    subs = js.get("subGraph", [])
    if model.subgraphs:
        expected = [(s.name, s.inputs, s.outputs, s.nodes, s.tensors) for s in model.subgraphs]
    else:  # the reader keeps only the name of a single subgraph; it must list everything, in any
        # order (ml_face_isface.ms lists its output tensor first)
        expected = [(model.subgraph_name, list(model.inputs), list(model.outputs),
                     list(range(len(model.nodes))), list(range(len(model.tensors))))]
        subs = [dict(s, nodeIndices=sorted(s.get("nodeIndices", [])),
                     tensorIndices=sorted(s.get("tensorIndices", []))) for s in subs]
    d.eq("subGraph", [(s.get("name", ""), s.get("inputIndices", []), s.get("outputIndices", []),
                       s.get("nodeIndices", []), s.get("tensorIndices", [])) for s in subs],
         [(n, list(i), list(o), list(ns), list(ts)) for n, i, o, ns, ts in expected])

    d.eq("node count", len(js.get("nodes", [])), len(model.nodes))
    for k, (jn, node) in enumerate(zip(js.get("nodes", []), model.nodes)):
        where = f"node {k} ({node.name})"
        d.eq(f"{where} name", jn.get("name", ""), node.name)
        prim = jn.get("primitive", {})
        d.eq(f"{where} op", prim.get("value_type"), node.op_type)
        d.eq(f"{where} inputIndex", jn.get("inputIndex", []), list(node.inputs))
        d.eq(f"{where} outputIndex", jn.get("outputIndex", []), list(node.outputs))
        d.eq(f"{where} quantType", off.enum_value("QuantType", jn.get("quantType", 0)),
             node.quant_type)
        if prim.get("value_type") in off.tables and node.op_type == prim.get("value_type"):
            _attr_diff(d, off, where, node.op_type, prim.get("value", {}), node.attrs)

    d.eq("tensor count", len(js.get("allTensors", [])), len(model.tensors))
    for k, (jt, t) in enumerate(zip(js.get("allTensors", []), model.tensors)):
        where = f"tensor {k} ({t.name})"
        d.eq(f"{where} name", jt.get("name", ""), t.name)
        for key, ours in (("nodeType", t.node_type), ("dataType", t.data_type),
                          ("refCount", t.ref_count), ("offset", t.offset),
                          ("enableHuffmanCode", t.enable_huffman_code)):
            d.eq(f"{where} {key}", jt.get(key), ours)
        d.eq(f"{where} dims", jt.get("dims", []), list(t.dims))
        d.eq(f"{where} format", off.enum_value("Format", jt.get("format", 0)), t.format)
        d.eq(f"{where} weightQuantCompressType",
             off.enum_value("WeightQuantCompressType", jt.get("weightQuantCompressType", 0)),
             t.weight_quant_compress_type)
        data = jt.get("data", [])
        d.eq(f"{where} data length", len(data), len(t.data or b""))
        if data and t.data and bytes(data) != t.data:
            d.problems.append(f"{where} data bytes differ")
        d.eq(f"{where} quantClusters length", len(jt.get("quantClusters", [])), len(t.quant_clusters))
        qps = jt.get("quantParams", [])
        d.eq(f"{where} quantParams length", len(qps), len(t.quant_params))
        for c, (jq, q) in enumerate(zip(qps, t.quant_params)):
            w = f"{where} quantParams[{c}]"
            for key, attr in (("scale", "scale"), ("min", "min"), ("max", "max"),
                              ("varCorr", "var_corr"), ("meanCorr", "mean_corr")):
                d.eq(f"{w}.{key}", jq.get(key), getattr(q, attr), close=True)
            for key, attr in (("zeroPoint", "zero_point"), ("narrowRange", "narrow_range"),
                              ("numBits", "num_bits"), ("inited", "inited"),
                              ("dstDtype", "dst_dtype"), ("roundType", "round_type"),
                              ("multiplier", "multiplier")):
                d.eq(f"{w}.{key}", jq.get(key), getattr(q, attr))
        d.eq(f"{where} externalData",
             [(e.get("checkSum", ""), e.get("location", ""), e.get("offset"), e.get("length"))
              for e in jt.get("externalData", [])], [tuple(e) for e in t.external_data])
    return d.problems


def _assert_same(off, path, out_dir):
    problems = compare(off, off.decode(path, out_dir), read_ms(path))
    assert not problems, f"{path}: {len(problems)} difference(s):\n" + "\n".join(problems[:25])


# ---------------------------------------------------------------------------------------------
# The project's schema tables against the official schema.

_TOKENS = {"bool": "b", "long": "i64", "float": "f", "int": "i32", "string": "s", "[long]": "[i64]",
           "[float]": "[f]", "[int]": "[i32]", "Vec2D": "vec2d", "[Attribute]": "[attr]"}


def test_union_order_and_op_tables_match_the_official_schema(official):
    assert list(schema.PRIMITIVE_NAMES) == official.union
    for op in official.union:
        expected = []
        for name, typ, default in official.tables[op]:
            if typ in official.enums:
                token = "i32" if official.enums[typ] is official.enums["Format"] else "i8"
                value = official.enum_value(typ, default) if default else 0
            else:
                token = _TOKENS[typ]
                value = (default == "true" if token == "b" else float(default)) if default else None
            expected.append((name, token, value))
        ours = schema.OP_FIELDS[op]
        assert [(n, t) for n, t, _ in expected] == [(n, t) for n, t, _ in ours], op
        for (name, _, value), (_, _, default) in zip(expected, ours):
            if value is None:
                assert default in (0, 0.0, False, "", ()), (op, name, default)
            else:
                assert default == value, (op, name, default, value)


def test_enum_tables_match_the_official_schema(official):
    def by_value(enum):
        return {v: k for k, v in official.enums[enum].items()}
    assert FORMAT_NAMES == by_value("Format")
    assert schema.ACTIVATION_TYPES == by_value("ActivationType")
    assert schema.QUANT_TYPES == by_value("QuantType")
    assert schema.WEIGHT_COMPRESS_TYPES == by_value("WeightQuantCompressType")
    assert schema.PAD_MODES == official.enums["PadMode"]
    assert schema.ROUND_MODES == official.enums["RoundMode"]
    assert schema.REDUCE_MODES == {k[len("Reduce"):]: v
                                   for k, v in official.enums["ReduceMode"].items()}


# ---------------------------------------------------------------------------------------------
# (a) Every golden file written by the official converter.

def test_golden_files_decode_the_same_with_flatc_and_read_ms(official, golden_dir, tmp_path):
    names = sorted(f for f in os.listdir(golden_dir) if f.endswith(".ms"))
    assert names, f"no .ms files in {golden_dir}"
    for name in names:
        _assert_same(official, os.path.join(golden_dir, name), tmp_path / name)


# ---------------------------------------------------------------------------------------------
# (b) Files written by the project: a hand-built model through the writer, and a converted ONNX.

def _hand_built_model():
    """Every kind of field the writer emits: enums, [long], [float], Vec2D, strings, [Attribute],
    defaults and non-defaults, int8 weights with per-channel QuantParams."""
    rng = np.random.default_rng(0)

    def const(name, arr, fmt=0, quant=()):
        arr = np.ascontiguousarray(arr)
        return MsTensor(name=name, node_type=NODE_TYPE_CONST, data_type=NUMPY_TO_TYPEID[arr.dtype],
                        dims=arr.shape, format=fmt, data=arr.tobytes(), quant_params=list(quant))

    def computed(name, dims, fmt=1):
        return MsTensor(name=name, node_type=NODE_TYPE_COMPUTED, data_type=TYPE_FLOAT32, dims=dims,
                        format=fmt)

    quant = [QuantParam(scale=0.01 * (c + 1), zero_point=c - 2, narrow_range=False, inited=True,
                        min=-1.5, max=2.25, var_corr=0.5, mean_corr=0.125) for c in range(4)]
    tensors = [
        computed("x", (1, 6, 6, 3)),                                                    # 0
        const("w", rng.integers(-127, 128, (4, 3, 3, 3), dtype=np.int8), 1, quant),    # 1
        const("b", rng.standard_normal(4).astype(np.float32)),                         # 2
        computed("conv", (1, 3, 3, 4)),                                                # 3
        computed("pad", (1, 5, 5, 4)),                                                 # 4
        const("paddings", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)),       # 5
        computed("add", (1, 5, 5, 4)),                                                 # 6
        computed("mean", (1, 4), 0),                                                   # 7
        const("axes", np.array([1, 2], np.int32)),                                     # 8
        const("fc_w", rng.standard_normal((2, 4)).astype(np.float32)),                 # 9
        computed("logits", (1, 2), 0),                                                 # 10
        computed("probs", (1, 2), 0),                                                  # 11
        computed("custom", (1, 2), 0),                                                 # 12
        computed("d2s", (1, 10, 10, 1)),                                               # 13
        computed("priors", (1, 2, 8), 0),                                              # 14
    ]
    nodes = [
        MsNode("conv", "Conv2DFusion", dict(format=1, kernel_size=(3, 3), stride=(2, 2),
                                            dilation=(1, 1), pad_mode=0, pad_list=(1, 0, 1, 0),
                                            group=1, in_channel=3, out_channel=4, mode=1,
                                            activation_type=3), [0, 1, 2], [3], QUANT_WEIGHT),
        MsNode("pad", "PadFusion", dict(paddings=((0, 0), (1, 1), (1, 1), (0, 0)), padding_mode=1,
                                        constant_value=0.25), [3, 5], [4]),
        MsNode("add", "AddFusion", dict(activation_type=1), [4, 4], [6]),
        MsNode("mean", "ReduceFusion", dict(keep_dims=False, mode=0, coeff=1.0), [6, 8], [7]),
        MsNode("fc", "MatMulFusion", dict(transpose_b=True), [7, 9], [10]),
        MsNode("softmax", "Softmax", dict(axis=(-1,)), [10], [11]),
        MsNode("custom", "Custom", dict(type="Vendor", attr=(("k", b"\x01\x02"), ("empty", b""))),
               [11], [12]),
        MsNode("d2s", "DepthToSpace", dict(block_size=2, mode="DCR"), [6], [13]),
        MsNode("prior", "PriorBox", dict(min_sizes=(8, 16), aspect_ratios=(1.0, 0.5),
                                         variances=(0.1, 0.2), step_w=0.75, clip=True), [6], [14]),
    ]
    return MsModel(version="MindSpore Lite 2.5.0", fmk_type=3, inputs=[0], outputs=[11, 12, 13],
                   nodes=nodes, tensors=tensors)


def test_hand_built_model_written_by_the_project_decodes_with_the_official_schema(official, tmp_path):
    path = tmp_path / "hand.ms"
    write_ms(_hand_built_model(), path)
    js = official.decode(path, tmp_path / "json")
    _assert_same(official, path, tmp_path / "json2")
    conv = js["nodes"][0]
    assert conv["primitive"]["value_type"] == "Conv2DFusion"
    value = conv["primitive"]["value"]
    assert (value["format"], value["pad_mode"], value["activation_type"]) == ("NHWC", "PAD", "RELU6")
    assert (value["kernel_size"], value["stride"], value["pad_list"]) == ([3, 3], [2, 2], [1, 0, 1, 0])
    assert (value["group"], value["in_channel"], value["out_channel"], value["mode"]) == (1, 3, 4, 1)
    assert conv["quantType"] == "QUANT_WEIGHT"
    w = js["allTensors"][1]
    assert w["dataType"] == TYPE_INT8 and w["dims"] == [4, 3, 3, 3] and len(w["quantParams"]) == 4
    assert w["quantParams"][3]["zeroPoint"] == 1 and w["quantParams"][3]["narrowRange"] is False
    assert js["nodes"][1]["primitive"]["value"]["paddings"]["data"][1]["data"] == [1, 1]
    assert js["nodes"][6]["primitive"]["value"]["attr"][0]["name"] == "k"
    assert js["nodes"][7]["primitive"]["value"]["mode"] == "DCR"
    assert len(js["subGraph"]) == 1 and js["subGraph"][0]["nodeIndices"] == list(range(9))


def _tiny_onnx(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a, n) for n, a in (
        ("w1", rng.standard_normal((32, 3, 3, 3)).astype(np.float32) * 0.3),
        ("b1", rng.standard_normal(32).astype(np.float32)),
        ("w2", rng.standard_normal((32, 1, 3, 3)).astype(np.float32) * 0.3),
        ("w3", rng.standard_normal((32, 32, 1, 1)).astype(np.float32) * 0.3),
        ("fc_w", rng.standard_normal((20, 32)).astype(np.float32) * 0.3),
        ("fc_b", rng.standard_normal(20).astype(np.float32)))]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         group=32),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["c3", "r1"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 20])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_converted_onnx_decodes_with_the_official_schema(official, tmp_path, precision):
    from converters.pipeline import ConvertOptions, convert
    src = tmp_path / "tiny.onnx"
    _tiny_onnx(src)
    out = tmp_path / f"tiny_{precision}.ms"
    convert(src, out, ConvertOptions(fp16=precision == "fp16",
                                     quant="weight" if precision == "int8" else None))
    js = official.decode(out, tmp_path / "json")
    _assert_same(official, out, tmp_path / "json2")
    ops = [n["primitive"]["value_type"] for n in js["nodes"]]
    assert ops.count("Conv2DFusion") == 3 and "AddFusion" in ops and "MatMulFusion" in ops
    assert js["version"].startswith("MindSpore Lite ") and js["fmkType"] == 2
    assert js["allTensors"][js["inputIndex"][0]]["format"] == "NHWC"
    convs = [n["primitive"]["value"] for n in js["nodes"]
             if n["primitive"]["value_type"] == "Conv2DFusion"]
    dw = [c for c in convs if c["group"] > 1]
    assert len(dw) == 1 and dw[0]["group"] == dw[0]["in_channel"] == dw[0]["out_channel"] == 32
    assert all(c["format"] == "NHWC" for c in convs)
    if precision == "int8":
        q = [t for t in js["allTensors"] if t["dataType"] == TYPE_INT8]
        assert q and all(len(t["quantParams"]) == t["dims"][0] for t in q)
        assert "QUANT_WEIGHT" in [n["quantType"] for n in js["nodes"]]
