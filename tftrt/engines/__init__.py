"""Engine backends: each turns an ONNX model into a runnable, serializable engine."""
