"""Triton Python-backend model serving a tftrt converted model (copied as ``model.py``).

Runs inside Triton's Python stub process. The stub embeds the interpreter in isolated
mode (no PYTHONPATH), so the model's own ``parameters`` say where tftrt and its
dependencies live (``tftrt_python_path``, written by ``tftrt export-triton`` from the
exporting interpreter); they go first on ``sys.path`` before NumPy is imported.

Tensors cross the stub boundary through DLPack only: the stub's ``as_numpy()`` and
``Tensor(name, array)`` are compiled against NumPy 1's C layout and corrupt data under
NumPy 2, while DLPack is a stable C ABI both NumPy generations speak.
"""

import json
import os
import site
import sys


def _params(args):
    config = json.loads(args["model_config"])
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


def _use_python_path(entries):
    entries = [p for p in entries if os.path.isdir(p)]
    sys.path[:0] = [p for p in entries if p not in sys.path]
    for p in entries:  # .pth files (editable installs) of those site directories
        site.addsitedir(p)


def _quiet_capsule_rename(default=sys.unraisablehook):
    # The stub renames a consumed DLPack capsule to a name NumPy's capsule destructor does
    # not know; the destructor then reports an error it cannot raise, on every response.
    # The tensor itself is released by the DLPack deleter as it should be.
    def hook(u):
        if u.object is None and isinstance(u.exc_value, ValueError) and \
                "PyCapsule_GetPointer called with incorrect name" in str(u.exc_value):
            return
        default(u)

    sys.unraisablehook = hook


def _exportable(np, v):
    # DLPack 0.x (the stub's) carries no read-only flag, so NumPy exports writable C arrays only
    return v if v.flags.c_contiguous and v.flags.writeable else np.array(v, order="C")


class TritonPythonModel:
    def initialize(self, args):
        params = _params(args)
        _use_python_path(json.loads(params.get("tftrt_python_path") or "[]"))
        _quiet_capsule_rename()
        import numpy as np
        import triton_python_backend_utils as pb_utils

        from tftrt.serving.served import ServedModel

        self.np, self.pb = np, pb_utils
        model_dir = os.path.join(args["model_repository"], args["model_version"],
                                 params.get("tftrt_model", "model"))
        self.model = ServedModel(model_dir, loader=params.get("tftrt_loader", "auto"))
        self.pb.Logger.log_info(
            f"tftrt: {args['model_name']} loaded by {self.model.loader} with "
            f"{len(self.model.engines)} engine(s); batch sizes {self.model.plan.ranges}")

    def execute(self, requests):
        np, pb = self.np, self.pb
        responses = [None] * len(requests)
        groups = {}
        for k, request in enumerate(requests):
            try:
                feeds = {}
                for t in self.model.inputs:
                    tensor = pb.get_input_tensor_by_name(request, t.name)
                    if tensor is None:
                        raise ValueError(f"input {t.name!r} is missing")
                    feeds[t.name] = np.from_dlpack(tensor)
                self.model.check(feeds)
            except Exception as exc:
                responses[k] = pb.InferenceResponse(error=pb.TritonError(str(exc)))
                continue
            key = tuple(v.shape[1:] if self.model.batched else v.shape
                        for v in feeds.values())
            groups.setdefault(key, []).append((k, feeds))
        for members in groups.values():
            self._run_group(members, responses)
        return responses

    def _run_group(self, members, responses):
        np, pb = self.np, self.pb
        try:
            if self.model.batched and len(members) > 1:
                rows = [next(iter(f.values())).shape[0] for _, f in members]
                feeds = {t.name: np.concatenate([f[t.name] for _, f in members])
                         for t in self.model.inputs}
                out = self.model.run(feeds)
                bounds = np.cumsum([0] + rows)
                outs = [{n: v[bounds[i]:bounds[i + 1]] for n, v in out.items()}
                        for i in range(len(members))]
            else:
                outs = [self.model.run(f) for _, f in members]
            for (k, _), out in zip(members, outs, strict=True):
                responses[k] = pb.InferenceResponse([
                    pb.Tensor.from_dlpack(n, _exportable(np, v)) for n, v in out.items()])
        except Exception as exc:
            for k, _ in members:
                responses[k] = pb.InferenceResponse(error=pb.TritonError(
                    f"tftrt: running the model failed: {exc}"))

    def finalize(self):
        model = getattr(self, "model", None)
        if model is not None:
            self.pb.Logger.log_info(f"tftrt: engines built while serving: {model.builds}; "
                                    f"native segment calls: {model.native_calls}")
