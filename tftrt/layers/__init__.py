"""Plugin layers: custom ops of the ``tftrt`` ONNX domain with a lowering per backend."""
