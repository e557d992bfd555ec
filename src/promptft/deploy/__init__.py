"""Road to production: distillation, pruning, quantization, ONNX export, serving."""
