"""TF-TRT SavedModels for the tests: the genuine ones in tests/data/legacy_tftrt (written by
TF 2.17.1's converter, see make_models.py there), and variants derived from them here by
editing their protos the way TF-TRT itself would have written them:

* ``with_build_layout``: what ``build()`` + ``save()`` leave (TensorRT absent, so the
  engine bytes are fake, as in the reference's synthetic dump): ``assets/trt-serialized-
  engine.<engine>`` TFRecords of TRTEngineInstance, asset_file_def entries, top-level
  CreateTRTResourceHandle nodes, and ``trt_engine_resources`` objects whose creator/
  initializer/destroyer functions call CreateTRTResourceHandle/InitializeTRTResource;
* ``edit_engines`` / ``add_unconvertible_op`` / ``drop_function``: attribute changes, an
  op no converter handles inside a segment, a missing ``segment_func``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import function_pb2, node_def_pb2, op_def_pb2
from tensorflow.core.protobuf import saved_model_pb2

from tftrt.compiler import legacy_assets

DATA = os.path.join(os.path.dirname(__file__), "data", "legacy_tftrt")
GENUINE = ("tiny_dynshape_fp32", "two_engines_implicitbatch_fp16", "three_engines_dynamic_fp32",
           "two_inputs_implicit_fp32", "cnn_implicit_fp16", "unfrozen_dynamic_fp32",
           "no_runtime_build_fp32", "tf1_dynamic_op_fp32")


def path(name: str) -> str:
    return os.path.join(DATA, name)


def reference(name: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, outputs of the original model) by signature name, as TF 2.17.1 computed."""
    with np.load(path(name) + ".npz") as d:
        if "x" in d.files:  # the two reference models' layout
            return {"x": d["x"]}, {"output_0": d["y"]}
        return ({k[3:]: d[k] for k in d.files if k.startswith("in_")},
                {k[4:]: d[k] for k in d.files if k.startswith("out_")})


def copy(name: str, dst: str) -> str:
    shutil.copytree(path(name), dst)
    for root, dirs, files in os.walk(dst):
        for f in dirs + files:
            os.chmod(os.path.join(root, f), 0o755 if f in dirs else 0o644)
    return dst


def read(model_dir: str) -> saved_model_pb2.SavedModel:
    with open(os.path.join(model_dir, "saved_model.pb"), "rb") as f:
        return saved_model_pb2.SavedModel.FromString(f.read())


def write(model_dir: str, sm: saved_model_pb2.SavedModel) -> None:
    with open(os.path.join(model_dir, "saved_model.pb"), "wb") as f:
        f.write(sm.SerializeToString())
    fingerprint = os.path.join(model_dir, "fingerprint.pb")
    if os.path.exists(fingerprint):
        os.remove(fingerprint)  # it no longer matches


def engine_nodes(sm: saved_model_pb2.SavedModel) -> list[node_def_pb2.NodeDef]:
    graph = sm.meta_graphs[0].graph_def
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return [n for n in nodes if n.op == "TRTEngineOp"]


def edit_engines(model_dir: str, edit: Callable[[node_def_pb2.NodeDef], None]) -> None:
    sm = read(model_dir)
    for node in engine_nodes(sm):
        edit(node)
    write(model_dir, sm)


def function(sm: saved_model_pb2.SavedModel, name: str) -> function_pb2.FunctionDef:
    return next(f for f in sm.meta_graphs[0].graph_def.library.function
                if f.signature.name == name)


def drop_function(model_dir: str, name: str) -> None:
    sm = read(model_dir)
    lib = sm.meta_graphs[0].graph_def.library
    kept = [f for f in lib.function if f.signature.name != name]
    del lib.function[:]
    lib.function.extend(kept)
    write(model_dir, sm)


def rename_signature(model_dir: str, old: str, new: str) -> None:
    """Save the model's signature ``old`` under ``new`` (TF-TRT keeps the key it was given)."""
    sm = read(model_dir)
    mg = sm.meta_graphs[0]
    mg.signature_def[new].CopyFrom(mg.signature_def[old])
    del mg.signature_def[old]
    for obj in mg.object_graph_def.nodes:
        if obj.WhichOneof("kind") == "user_object" and \
                obj.user_object.identifier == "signature_map":
            for child in obj.children:
                if child.local_name == old:
                    child.local_name = new
    write(model_dir, sm)


def add_unconvertible_op(model_dir: str, segment: str, op: str = "BesselI0e") -> None:
    """Put ``op`` (one float input, output ``y``) on the output of ``segment``'s function."""
    sm = read(model_dir)
    fdef = function(sm, segment)
    (key,) = fdef.ret
    node = fdef.node_def.add(name="inserted_" + op, op=op, input=[fdef.ret[key]])
    node.attr["T"].type = tf.float32.as_datatype_enum
    fdef.ret[key] = f"{node.name}:y:0"
    write(model_dir, sm)


# -- the layout build() + save() leave --------------------------------------------------

def _opdef(name: str, inputs: list[tuple[str, int]], outputs: list[tuple[str, int]],
           attrs: list[tuple[str, str]]) -> op_def_pb2.OpDef:
    op = op_def_pb2.OpDef(name=name, is_stateful=True)
    for n, t in inputs:
        op.input_arg.add(name=n, type=t)
    for n, t in outputs:
        op.output_arg.add(name=n, type=t)
    for n, t in attrs:
        op.attr.add(name=n, type=t)
    return op


_STRING, _RESOURCE = tf.string.as_datatype_enum, tf.resource.as_datatype_enum


def _handle_node(fdef: function_pb2.FunctionDef, engine: str) -> str:
    node = fdef.node_def.add(name="CreateTRTResourceHandle", op="CreateTRTResourceHandle",
                             device="/device:GPU:*")
    node.attr["resource_name"].s = engine.encode()
    return "CreateTRTResourceHandle:resource_handle:0"


def _resource_functions(engine: str, k: int) -> tuple[function_pb2.FunctionDef, ...]:
    creator = function_pb2.FunctionDef()
    creator.signature.name = f"__inference__creator_{900 + 3 * k}"
    creator.signature.output_arg.add(name="identity", type=_RESOURCE)
    creator.ret["identity"] = _handle_node(creator, engine)
    init = function_pb2.FunctionDef()
    init.signature.name = f"__inference__initializer_{901 + 3 * k}"
    init.signature.input_arg.add(name="initializetrtresource_filename", type=_STRING)
    handle = _handle_node(init, engine)
    node = init.node_def.add(name="InitializeTRTResource", op="InitializeTRTResource",
                             input=[handle, "initializetrtresource_filename"])
    node.attr["max_cached_engines_count"].i = 1
    destroyer = function_pb2.FunctionDef()
    destroyer.signature.name = f"__inference__destroyer_{902 + 3 * k}"
    handle = _handle_node(destroyer, engine)
    destroy = destroyer.node_def.add(name="DestroyResourceOp", op="DestroyResourceOp",
                                     input=[handle])
    destroy.attr["ignore_lookup_error"].b = True
    return creator, init, destroyer


def _function_object(graph, fname: str, inputs: list[int]) -> int:
    obj = graph.nodes.add()
    obj.function.concrete_functions.append(fname)
    obj.function.function_spec.fullargspec.named_tuple_value.name = "FullArgSpec"
    cf = graph.concrete_functions[fname]
    cf.canonicalized_input_signature.tuple_value.values.add().tuple_value.SetInParent()
    args = cf.canonicalized_input_signature.tuple_value.values[0].tuple_value
    for dtype in inputs:
        spec = args.values.add().tensor_spec_value
        spec.dtype = dtype
    cf.canonicalized_input_signature.tuple_value.values.add().dict_value.SetInParent()
    cf.output_signature.none_value.SetInParent()
    return len(graph.nodes) - 1


def write_engine_file(fname: str, records: list[tuple[list[list[int]], bytes]]) -> None:
    with tf.io.TFRecordWriter(fname) as w:
        for shapes, plan in records:
            w.write(legacy_assets.encode_instance(shapes, plan))


def with_build_layout(model_dir: str, shapes: dict[str, list[list[int]]] | None = None) -> None:
    """Add to ``model_dir`` what TF-TRT's build() + save() write for each engine."""
    sm = read(model_dir)
    mg = sm.meta_graphs[0]
    graph = mg.object_graph_def
    resources = next(c.node_id for c in graph.nodes[0].children
                     if c.local_name == "trt_engine_resources")
    os.makedirs(os.path.join(model_dir, "assets"), exist_ok=True)
    mg.meta_info_def.stripped_op_list.op.extend([
        _opdef("CreateTRTResourceHandle", [], [("resource_handle", _RESOURCE)],
               [("resource_name", "string")]),
        _opdef("InitializeTRTResource", [("resource_handle", _RESOURCE), ("filename", _STRING)],
               [], [("max_cached_engines_count", "int")])])
    for k, node in enumerate(engine_nodes(sm)):
        engine = node.name
        asset = f"trt-serialized-engine.{engine}"
        declared = [[4 if d.size < 0 else d.size for d in s.dim]
                    for s in node.attr["input_shapes"].list.shape]
        build = (shapes or {}).get(engine, declared)
        write_engine_file(os.path.join(model_dir, "assets", asset),
                          [(build, b"fake TensorRT plan of " + engine.encode())])
        placeholder = mg.graph_def.node.add(name=f"asset_path_initializer_{k}", op="Placeholder")
        placeholder.attr["dtype"].type = _STRING
        mg.asset_file_def.add(filename=asset).tensor_info.name = f"{placeholder.name}:0"
        top = mg.graph_def.node.add(name=f"CreateTRTResourceHandle_{k}",
                                    op="CreateTRTResourceHandle", device="/device:GPU:*")
        top.attr["resource_name"].s = engine.encode()
        fns = _resource_functions(engine, k)
        mg.graph_def.library.function.extend(fns)
        init_call = mg.graph_def.node.add(name=f"StatefulPartitionedCall_init_{k}",
                                          op="StatefulPartitionedCall",
                                          input=[placeholder.name])
        init_call.attr["f"].func.name = fns[1].signature.name
        init_call.attr["Tin"].list.type.append(_STRING)
        init_call.attr["Tout"].list.SetInParent()
        asset_obj = graph.nodes.add()
        asset_obj.asset.asset_file_def_index = len(mg.asset_file_def) - 1
        asset_id = len(graph.nodes) - 1
        ids = [_function_object(graph, fns[0].signature.name, []),
               _function_object(graph, fns[1].signature.name, [_STRING]),
               _function_object(graph, fns[2].signature.name, [])]
        res = graph.nodes.add()
        res.resource.device = "/device:GPU:*"
        res_id = len(graph.nodes) - 1
        res.children.add(node_id=asset_id, local_name="_serialized_trt_resource_filename")
        for local, fid in zip(("_create_resource", "_initialize", "_destroy_resource"), ids,
                              strict=True):
            res.children.add(node_id=fid, local_name=local)
        graph.nodes[resources].children.add(node_id=res_id, local_name=engine)
    write(model_dir, sm)


def truncate(fname: str, keep: int) -> None:
    with open(fname, "rb") as f:
        data = f.read()
    with open(fname, "wb") as f:
        f.write(data[:keep])
